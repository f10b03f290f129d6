"""What the nodes logged while a scenario failed: the full logs saved with the run, and a digest
(the error lines since the scenario started) for the failure report, so a CI log alone says why."""
import re
import time
from pathlib import Path

# services' own log files; the journal covers corosync, pacemaker and the units' start/stop
# (spelled out: the exec runs `sh -c`, and dash has no brace expansion)
LOG_GLOB = " ".join(f"/var/log/{d}/*.log" for d in
                    ("nova", "cinder", "glance", "keystone", "placement", "neutron", "rabbitmq", "mysql"))
# first lines of problems only (a traceback's continuation lines repeat the prefix)
_PROBLEM = re.compile(r" (ERROR|CRITICAL) \S+ \[|pacemaker-\w+\[\d+\]: +(error|crit)|"
                      r"systemd\[1\]: .*(Failed|failed with result)|exited, code=|Out of memory")
# what every cluster says before its CIB (stonith-enabled=false) is loaded: not a problem
_BENIGN = re.compile(r"STONITH resources have been defined|disable STONITH with the stonith-enabled|"
                     r"shared data need STONITH")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def collect(backend, nodes: list[str], since: float, dest: Path) -> None:
    """Journal since `since` (epoch seconds) and the tail of every service log, one file per node."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = (f"echo '### journal'; journalctl --no-pager -o short-iso-precise --since @{int(since)}; "
           f"echo '### service logs'; "
           f"for f in $(ls {LOG_GLOB} 2>/dev/null); do echo \"==> $f\"; tail -n 500 \"$f\"; done")
    for node in nodes:
        (dest / f"{node}.log").write_text(backend.exec(node, cmd, timeout=60, check=False).out)


def digest(dest: Path, since: float, per_node: int = 25) -> str:
    """The last problem lines of each node's collected log, newer than `since`."""
    after = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(since))
    out = []
    for path in sorted(dest.glob("*.log")):
        lines = [ln for ln in path.read_text(errors="replace").splitlines()
                 if _PROBLEM.search(ln) and not _BENIGN.search(ln) and _newer(ln, after)]
        out.append(f"--- {path.stem}: {len(lines)} problem lines since the scenario started"
                   + (f", last {per_node}" if len(lines) > per_node else ""))
        out += [ln[:300] for ln in lines[-per_node:]]
    return "\n".join(out)


def _newer(line: str, after: str) -> bool:
    m = _STAMP.match(line.replace("T", " ", 1))
    return m is None or m.group(1) >= after
