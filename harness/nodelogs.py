"""What the nodes logged while a scenario failed: the full logs saved with the run, and a digest
(the error lines since the scenario started) for the failure report, so a CI log alone says why."""
import re
import time
from concurrent.futures import ThreadPoolExecutor
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


def collect_cluster_state(backend, nodes: list[str], since: float, dest: Path) -> list[str]:
    """The CIB and crm_mon's XML (from the first node that answers) and each node's own
    crm_report archive (-S: the nodes have no ssh between them) into `dest`; returns what
    could not be collected, one line each."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = []
    for name, cmd in (("cib.xml", "cibadmin -Q"), ("crm_mon.xml", "crm_mon -1 --output-as=xml")):
        for node in nodes:
            r = backend.exec(node, cmd, timeout=30, check=False)
            if r.ok:
                (dest / name).write_text(r.out)
                break
        else:
            missing.append(f"{name}: no node answered `{cmd}`")
    if backend.slow_nodes:
        return missing + ["crm_report: not run on these nodes (emulated CPUs: it outlasted 240 s on each; "
                          "the journals, the CIB and crm_mon's XML are collected)"]
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since - 60))

    def report(node: str) -> str | None:
        base = f"/tmp/crm_report-{node}-{int(time.time())}"
        r = backend.exec(node, f"crm_report -S -f '{start}' {base} >/dev/null 2>&1; ls {base}.tar.*",
                         timeout=240, check=False)
        if not r.ok:
            return f"crm_report on {node}: failed (rc {r.rc})"
        archive = r.out.strip().splitlines()[-1]
        (dest / f"crm_report-{node}{archive[len(base):]}").write_bytes(backend.fetch(node, archive))
        backend.exec(node, f"rm -rf {base} {archive}", check=False)
        return None
    with ThreadPoolExecutor(max(1, len(nodes))) as pool:       # one node's report does not wait for another's
        missing += [m for m in pool.map(report, nodes) if m]
    return missing


def evidence(backend, nodes: list[str], since: float, dest: Path) -> list[str]:
    """Everything a failure report carries: logs, CIB, crm_mon, crm_report archives."""
    collect(backend, nodes, since, dest)
    return collect_cluster_state(backend, nodes, since, dest)


def archive(backend, nodes: list[str], dest: Path, since: float = 0.0) -> list[str]:
    """`harness logs RUN`: journals, service logs, CIB, crm_mon and crm_report of every node
    in one .tar.gz; returns what could not be collected."""
    import tarfile
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / dest.name.split(".")[0]
        missing = evidence(backend, nodes, since, work)
        with tarfile.open(dest, "w:gz") as tar:
            tar.add(work, arcname=work.name)
    return missing
