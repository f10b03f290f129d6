"""What exists of Vagrant runs on this host, found by name, and its removal.

Every libvirt object of a run is named `<prefix>-<run>-<what>` (domains `...-node1`,
networks `...-mgmt` and `...-cluster`, disks `...-node1.img`); its directory under RUNS_DIR
says who owns it. A run killed half-way (even by SIGKILL, even during `vagrant up`) leaves
only such names, so removal works from libvirt's lists alone, never from Vagrant's state.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from pathlib import Path

from ..labels import PREFIX
from ..ownership import processes, unmark_kept
from .vagrant import virsh
from .vagrantnodes import RUNS_DIR

POOL = "default"
BOX_VOLUME = "_vagrant_box_image_"       # vagrant-libvirt's copy of a box: an image, not a run's


def _names(*args: str) -> list[str]:
    r = virsh(*args, check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []


def _run_of(name: str) -> str | None:
    """The run id in `<prefix>-<run>-<what>` (what: a host, mgmt or cluster; no '-' in it)."""
    if not name.startswith(f"{PREFIX}-") or BOX_VOLUME in name:
        return None
    rest = name[len(PREFIX) + 1:].removesuffix(".img")
    return rest.rsplit("-", 1)[0] if "-" in rest else None


def libvirt_objects() -> list[tuple[str, str, str]]:
    """(kind, name, run) of every harness object libvirt knows."""
    found = [("domain", n) for n in _names("list", "--all", "--name")]
    found += [("network", n) for n in _names("net-list", "--all", "--name")]
    virsh("pool-refresh", POOL, check=False)
    found += [("volume", n) for n in _names("vol-list", POOL)]
    return [(kind, name, run) for kind, name in found if (run := _run_of(name))]


def _meta(run_id: str) -> dict:
    try:
        return json.loads((RUNS_DIR / run_id / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def runs() -> dict[str, dict]:
    """{run: {"pid", "pid_start", "topology", "source", "created"}} of every run with a
    directory or a libvirt object here."""
    ids = {p.name for p in RUNS_DIR.glob("*") if p.is_dir()} | {run for _, _, run in libvirt_objects()}
    return {rid: {k: _meta(rid).get(k) for k in ("pid", "pid_start", "topology", "source", "created")}
            for rid in sorted(ids)}


def run_objects(run_id: str) -> list[str]:
    objs = [f"{kind} {name}" for kind, name, run in libvirt_objects() if run == run_id]
    return objs + ([f"directory {RUNS_DIR / run_id}"] if (RUNS_DIR / run_id).is_dir() else [])


def objects_owned_by(pid: int) -> list[str]:
    return [obj for rid, info in runs().items() if str(info.get("pid")) == str(pid)
            for obj in run_objects(rid)]


def _stop_ssh_masters(directory: Path) -> None:
    """The run's persistent SSH connections (their command line names the run's directory)."""
    needle = f"ControlPath={directory}/".encode()
    for pid in processes(lambda argv: any(needle in arg for arg in argv)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def remove_run(run_id: str) -> list[str]:
    """Remove every object of one run: fence gate, VMs and their disks, networks, SSH
    connections, its directory; what was removed, one line each."""
    from .fencegate import stop_gate
    unmark_kept(run_id)
    removed = ["fence gate " + run_id] if stop_gate(run_id) else []
    objects = [(kind, name) for kind, name, run in libvirt_objects() if run == run_id]
    for kind, name in sorted(objects, key=lambda o: ("domain", "volume", "network").index(o[0])):
        if kind == "domain":
            virsh("destroy", name, check=False)
            ok = virsh("undefine", name, "--remove-all-storage", "--managed-save", check=False).returncode == 0
        elif kind == "volume":
            ok = virsh("vol-delete", name, "--pool", POOL, check=False).returncode == 0
        else:
            virsh("net-destroy", name, check=False)
            ok = virsh("net-undefine", name, check=False).returncode == 0
        if ok:
            removed.append(f"{kind} {name}")
    directory = RUNS_DIR / run_id
    if directory.is_dir():
        _stop_ssh_masters(directory)
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(f"directory {directory}")
    return removed
