"""Who owns a run, and one command at a time per run.

A run is
  live     its lock is held (a pytest session or a CLI command is using it), or the process
           that created it still runs (same pid *and* start time: pids are recycled);
  kept     nobody uses it and it was left up on purpose (`up`, `--keep-cluster`);
  crashed  nobody uses it and it was never meant to stay: `gc` removes it.

The lock is a flock on a file per run id (any backend): the kernel drops it when its
process dies, so a SIGKILLed owner never leaves a run locked.
"""
from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path

LIVE, KEPT, CRASHED = "live", "kept", "crashed"


class RunBusy(RuntimeError):
    """Another process holds the run; str() is one line naming it."""


def lock_dir() -> Path:
    for base in (Path("/run/ha-harness/locks"), Path.home() / ".cache" / "ha-harness" / "locks"):
        try:
            base.mkdir(parents=True, exist_ok=True)
            if os.access(base, os.W_OK):
                return base
        except OSError:
            continue
    raise RunBusy("no writable directory for run locks (/run/ha-harness or ~/.cache/ha-harness)")


def _state_dir(kind: str) -> Path:
    path = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "ha-harness" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kept_dir() -> Path:
    return _state_dir("kept")


def clouds_yaml_path(run_id: str) -> Path:
    """Where `up` writes a kept run's clouds.yaml (for OS_CLIENT_CONFIG_FILE)."""
    return _state_dir("clouds") / f"{run_id}.yaml"


def mark_kept(run_id: str) -> None:
    """The run came up and is left up on purpose. Written only after a successful bring-up:
    an `up` killed half-way leaves a crashed run, which gc removes."""
    (_kept_dir() / run_id).write_text(json.dumps({"pid": os.getpid(), "since": time.time()}))


def unmark_kept(run_id: str) -> None:
    (_kept_dir() / run_id).unlink(missing_ok=True)
    from .cloudsconf import withdraw      # its credentials go with it
    withdraw(run_id)


def is_kept(run_id: str) -> bool:
    return (_kept_dir() / run_id).exists()


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields after the command name (field 3 first); None: no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    fields = _stat(pid)
    return fields[19] if fields else None


def process_gone(pid: int) -> bool:
    """Exited (a zombie has exited too, it only waits for its parent)."""
    fields = _stat(pid)
    return fields is None or fields[0] == "Z"


def processes(match) -> list[int]:
    """PIDs whose command line (its arguments, as bytes) satisfies `match`."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if match(argv):
            pids.append(int(proc.name))
    return pids


def owner_alive(pid, start) -> bool:
    if not pid or not str(pid).isdigit():
        return False
    actual = process_start(int(pid))
    return actual is not None and (not start or actual == str(start))


def classify(owner_pid, owner_start, kept: bool, locked: bool) -> str:
    """The run's state from its labels and its lock (pure: unit-tested with the liveness given)."""
    if locked or owner_alive(owner_pid, owner_start):
        return LIVE
    return KEPT if kept else CRASHED


def describe_holder(info: dict) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid', '?')} ({info.get('command', '?')}) since {since}"


class RunLock:
    """Exclusive use of one run across processes (CLI, pytest plugin), whatever the backend."""

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.path = lock_dir() / f"{run_id}.lock"
        self._fd: int | None = None

    def holder(self) -> dict | None:
        """Who holds it now (None: free)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            try:
                return json.loads(self.path.read_text() or "{}")
            except (OSError, ValueError):
                return {}
        finally:
            os.close(fd)

    def acquire(self, wait_s: float = 0.0, log=None) -> "RunLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder() or {}
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise RunBusy(f"run {self.run_id} is in use by {describe_holder(holder)}") from None
                if log and not said:
                    log(f"run {self.run_id} is in use by {describe_holder(holder)}; waiting up to {wait_s:.0f}s")
                    said = True
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)[:200],
                                 "since": time.time()}).encode())
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """This process holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
