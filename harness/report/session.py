"""What a pytest session leaves in its run directory: results.json (schema 1) and
report.html (pytest's own junitxml writes junit.xml there). Called by the plugin;
kept here so the plugin stays wiring only."""
from __future__ import annotations

import os
import time
from pathlib import Path

from . import facts, html, results


def run_fields(run, topology_name: str | None, started_wall: float, exit_status: int,
               junit: str | None, run_dir: Path, cluster_facts: dict | None, resets=()) -> dict:
    """The `run` object from the ClusterRun (None when no cluster came up)."""
    backend = run.backend.name if run else None
    timings = None
    if run:
        timings = {"bring_up_s": run.timings.bring_up_s, "create_s": run.timings.create_s,
                   "images": [vars(i) for i in run.timings.images]}
    cf = cluster_facts or {"fact_errors": ["no cluster came up: packages and agent checksums not read"]}
    return results.run_info(
        topology=run.topology.name if run else topology_name, backend=backend,
        run_id=run.run_id if run else None, seed=getattr(run, "seed", None),
        started_wall=round(started_wall, 3), finished_wall=round(time.time(), 3), exit_status=int(exit_status),
        junit=_junit_ref(junit, run_dir), timings=timings, packages=cf.get("packages"),
        packages_node=cf.get("packages_node"), resource_agents=cf.get("resource_agents"),
        host={**facts.host_facts(backend), **({"node_clocks": facts.clock_alignment(run.backend)} if run else {})},
        fact_errors=cf.get("fact_errors"), resets=[r.to_dict() for r in resets],
        agent_gate=cf.get("agent_gate"))


def _junit_ref(junit: str | None, run_dir: Path) -> str | None:
    if not junit:
        return None
    rel = os.path.relpath(Path(junit).resolve(), Path(run_dir).resolve())
    return Path(rel).as_posix() if not rel.startswith("..") else str(Path(junit).resolve())


def write(run_dir: Path, run_obj: dict, entries: list, outcomes: dict) -> tuple[Path, Path]:
    """results.json, then report.html from it (which validates it against the schema:
    an invalid document is still written, so no data is lost, and the error raised)."""
    path = results.write(results.build(run_obj, entries, run_dir, outcomes), run_dir / "results.json")
    return path, html.write(path)


def scenario_fragment(test: str, history_path: str, analysed: list, run_dir: Path) -> str:
    """One scenario's block (figures, timeline) for a pytest-html row."""
    entry = results.scenario_entry(test, Path(history_path), analysed, Path(run_dir))
    return html.scenario_body(entry, results.load_history(Path(run_dir) / "results.json", entry))


def choose_run_dir(reports_dir: str | Path, topology_name: str) -> Path:
    """reports/<stamp>-<topology>, decided when pytest starts (junit.xml goes there);
    created only when a cluster test needs it."""
    base = Path(reports_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{topology_name}"
    path, n = base, 1
    while path.exists():            # two sessions started in the same second
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def record_outcome(outcomes: dict, report, test: str | None = None) -> None:
    """Fold one phase's pytest report into {test: {"outcome", "duration_s", "message"}} (test:
    the plugin's test id, else the report's node id); the outcome is passed, failed, error,
    skipped, xfailed or xpassed."""
    o = outcomes.setdefault(test or report.nodeid, {"outcome": "passed", "duration_s": 0.0, "message": None})
    o["duration_s"] = round(o["duration_s"] + report.duration, 3)
    xfail = getattr(report, "wasxfail", None)
    if report.failed:
        o["outcome"] = "failed" if report.when == "call" else "error"
        text = f"[{report.when}] {report.longreprtext[-3000:]}"
        o["message"] = f"{o['message']}\n{text}" if o["message"] else text
    elif xfail is not None and o["outcome"] == "passed":
        # pytest calls an expected failure "skipped" and an unexpected pass "passed", both
        # with `wasxfail`: kept apart, with the reason, so summaries can list them
        o["outcome"] = "xfailed" if report.skipped else "xpassed"
        o["message"] = xfail.removeprefix("reason: ") or None
    elif report.skipped and o["outcome"] == "passed":
        o["outcome"] = "skipped"
        o["message"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else report.longreprtext


def junit_properties(analysed: list) -> list[tuple[str, str]]:
    """A scenario's figures as JUnit properties, for CI dashboards that read only junit.xml:
    per analysed fault its verdict, full recovery, each probe's downtime and each VIP move."""
    props = []
    for i, r in enumerate(analysed):
        key = r["fault"] if len(analysed) == 1 else f"{r['fault']}#{i + 1}"
        props.append((f"{key}.verdict", "PASS" if r["verdict"]["passed"] else "FAIL"))
        props.append((f"{key}.probe_interval_s", str(r["probe_interval_s"])))
        if r.get("full_recovery_s") is not None:
            props.append((f"{key}.full_recovery_s", f"{r['full_recovery_s']:.2f}"))
        for probe, d in r["downtime"].items():
            props.append((f"{key}.downtime_s.{probe}",
                          f"{d['downtime_s']:.2f}" if d["recovered"] else "never"))
        for vip, v in r.get("vip", {}).items():
            if v.get("move_s") is not None:
                props.append((f"{key}.vip_move_s.{vip}", f"{v['move_s']:.2f}"))
    return props
