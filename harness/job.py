"""python -m harness job: the scenarios on several topologies, one pytest session each,
then one summary of all of them.

tox stops at the first failing command, so a failure on the first topology left the
others unrun and unreported. Here every topology runs whatever the previous one did
(only an interrupt stops the job), each session writes its run directory into the
job's directory, and the summary is rebuilt from those directories and job.json
(what ran, exit codes, wall times) exactly as `python -m harness job-summary` does.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .report import jobsummary

# the stock scenarios shipped in the package: found from any directory, installed or not
SCENARIOS = str(Path(__file__).resolve().parent / "scenarios")
# pytest -v: "collecting ... collected 30 items / 25 deselected / 5 selected"
COLLECTED = re.compile(rb"collected (\d+) items?(?: / (\d+) deselected)?(?: / (\d+) selected)?[^\n]*\n")


class JobError(ValueError):
    """Bad job arguments; str() is one line."""


@dataclass
class Spec:
    topology: str
    args: list[str] = field(default_factory=list)


def parse_spec(text: str) -> Spec:
    """TOPOLOGY[:ARGS]: ARGS are split like a shell line and given to that topology's session only."""
    name, _, args = text.partition(":")
    if not name:
        raise JobError(f"{text!r}: no topology before ':'")
    return Spec(name, shlex.split(args))


def check_args(args: list[str]) -> None:
    # the job must find each session's run directory in its own reports directory
    if any(a == "--reports-dir" or a.startswith("--reports-dir=") for a in args):
        raise JobError("--reports-dir is the job's option (python -m harness job --reports-dir DIR ...), "
                       "not a pytest argument here")


def names_tests(arg: str) -> bool:
    """A test path, node id or pytest @argsfile (e.g. CI's cross-section of a layout)."""
    return (arg.startswith(("@", "tests/", "./tests/", "harness/", "./harness/")) or "::" in arg
            or arg.endswith(".py") or arg == "--pyargs")


def pytest_command(topology: str, reports_dir: Path, args: list[str]) -> list[str]:
    """The session of one topology: every scenario, unless the args name tests themselves.
    Per-topology args come before the job-wide ones, so an option given after `--` on the
    command line wins (pytest keeps the last value)."""
    tests = [] if any(names_tests(a) for a in args) else [SCENARIOS]
    return [sys.executable, "-m", "pytest", *tests, "--topology", topology, "-v",
            "--reports-dir", str(reports_dir), *args]


def new_job_dir(reports_dir: str | Path) -> Path:
    base = Path(reports_dir) / f"job-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def selected_count(text: bytes) -> int | None:
    """How many tests pytest selected, from its collection line; None before it appeared."""
    m = COLLECTED.search(text)
    if not m:
        return None
    collected, deselected, selected = (int(g) if g else None for g in m.groups())
    return selected if selected is not None else collected - (deselected or 0)


def stream(proc: subprocess.Popen, out) -> int | None:
    """Copy the child's output through as it comes (partial lines too: pytest -v writes
    the test id before its long run; `out.write` must flush); return the selected count
    seen on the way."""
    fd, head, selected = proc.stdout.fileno(), b"", None
    while chunk := os.read(fd, 65536):
        out.write(chunk)
        if selected is None and len(head) < 1 << 20:
            head += chunk
            selected = selected_count(head)
    return selected


class Job:
    def __init__(self, specs: list[Spec], reports_dir: str | Path = "reports", extra: list[str] | None = None,
                 command=pytest_command, out=None):
        self.specs, self.extra, self.command = specs, list(extra or []), command
        for s in specs:
            check_args([*s.args, *self.extra])
        self.job_dir = new_job_dir(reports_dir)
        self.out = out if out is not None else sys.stdout.buffer
        self.child: subprocess.Popen | None = None
        self.interrupted: str | None = None
        self.forwarded: int | None = None        # pid of the child already sent its SIGINT
        self.at_line_start = True
        self.started_wall = time.time()
        self.records = [{"topology": s.topology, "args": s.args, "state": "not run", "exit_code": None,
                         "wall_s": None, "run_dir": None, "selected": None, "command": None} for s in specs]

    def say(self, msg: str) -> None:
        # on a line of its own, also after a child's partial line (pytest -v: "test_id ")
        self.write((b"" if self.at_line_start else b"\n") + f"[job] {msg}\n".encode())

    def write(self, data: bytes) -> None:
        sys.stdout.flush()
        self.out.write(data)
        self.out.flush()
        if data:
            self.at_line_start = data.endswith(b"\n")

    def run(self) -> dict:
        """Every topology in order, then the summary (printed, and written into the job directory)."""
        self.job_dir.mkdir(parents=True)
        self.save()
        with self.forwarding_signals():
            for i, (spec, rec) in enumerate(zip(self.specs, self.records), 1):
                if self.interrupted:
                    break
                self.run_one(i, spec, rec)
                self.save()
        if self.interrupted:
            self.say(f"interrupted by {self.interrupted}: the remaining topologies were not run")
        self.save(finished=True)
        summary = jobsummary.build(*jobsummary.records_from_dirs([self.job_dir]))
        paths = jobsummary.write(summary, self.job_dir)
        self.write(("\n" + jobsummary.text(summary)).encode())
        self.say(f"summary written to {paths[0]} and {paths[1]}")
        return summary

    def run_one(self, i: int, spec: Spec, rec: dict) -> None:
        before = set(self.job_dir.iterdir())
        cmd = self.command(spec.topology, self.job_dir, [*spec.args, *self.extra])
        self.say(f"topology {i}/{len(self.specs)}: {spec.topology}: {shlex.join(cmd)}")
        rec.update(state="ran", command=cmd, started_wall=round(time.time(), 3))
        start = time.monotonic()
        try:
            # own session: a terminal's Ctrl-C reaches only us, and we forward exactly one
            # SIGINT (see forward)
            self.child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        except OSError as e:
            self.say(f"{spec.topology}: could not start pytest: {e}")
            rec.update(exit_code=127, wall_s=0.0)
            return
        self.forward()                  # an interrupt that came while it was starting
        try:
            rec["selected"] = stream(self.child, self)
        finally:
            rec["exit_code"] = self.child.wait()
            self.child = None
        rec.update(wall_s=round(time.monotonic() - start, 3), run_dir=self.new_run_dir(before))
        if self.interrupted:
            rec["state"] = "interrupted"
        self.say(f"{spec.topology}: pytest exited with {rec['exit_code']} after {jobsummary.dur(rec['wall_s'])}"
                 + (f", run directory {self.job_dir / rec['run_dir']}" if rec["run_dir"] else ", no run directory"))

    def new_run_dir(self, before: set[Path]) -> str | None:
        """The run directory the session just created (results.json preferred), relative to the job."""
        new = [p for p in set(self.job_dir.iterdir()) - before if p.is_dir()]
        new.sort(key=lambda p: ((p / "results.json").is_file(), (p / "junit.xml").is_file(), p.name))
        return new[-1].name if new else None

    def save(self, finished: bool = False) -> None:
        """job.json after every topology: a runner killed halfway still leaves its record."""
        job = {"job_dir": str(self.job_dir), "started_wall": round(self.started_wall, 3),
               "finished_wall": round(time.time(), 3) if finished else None,
               "interrupted": self.interrupted, "extra_args": self.extra, "topologies": self.records}
        (self.job_dir / jobsummary.JOB_RECORD).write_text(json.dumps(job, indent=2) + "\n")

    def on_signal(self, signum, frame) -> None:
        self.interrupted = self.interrupted or signal.Signals(signum).name
        child = self.child
        if child is not None and self.forwarded == child.pid:
            # a second SIGINT could cut the child's healing and teardown short: never sent
            _note(f"[job] pytest (pid {child.pid}) is still cleaning up; kill -9 {child.pid} abandons it "
                  f"(then `python -m harness gc` removes what it left)")
        self.forward()

    def forward(self) -> None:
        """SIGINT, once, to a running child, whatever signal came: pytest unwinds the
        KeyboardInterrupt through its fixtures (heal faults, remove the cluster) and still
        writes results.json."""
        child = self.child
        if self.interrupted and child is not None and child.poll() is None and self.forwarded != child.pid:
            self.forwarded = child.pid
            os.kill(child.pid, signal.SIGINT)
            _note(f"[job] {self.interrupted}: pytest (pid {child.pid}) is stopping and cleaning up")

    @contextlib.contextmanager
    def forwarding_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _note(msg: str) -> None:
    # os.write: a signal handler must not re-enter the buffered stdout it interrupted
    os.write(2, (msg + "\n").encode())


def main(topologies: list[str], reports_dir: str, extra: list[str], command=pytest_command, out=None) -> int:
    job = Job([parse_spec(t) for t in topologies], reports_dir, extra, command, out)
    return jobsummary.exit_code(job.run())
