"""python -m harness ab: the same scenarios with the stock agents (A) and a patch (B),
N times each, on one cluster, then one comparison with statistics.

The sides alternate in ABBA blocks (AB, BA, AB, ...) so that the machine's drift over
the run hits both alike. One cluster serves every session (kept under this run's own
id, removed at the end): each session installs its side's agents in place (B) or puts
the stock files back (A), so the CIB never changes. The first B session runs the static
gate (ocf-tester on every patched agent); if it fails, no B session runs and the
comparison says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import agentpatch, topology as topo_mod
from .job import Job, Spec, check_args, pytest_command
from .labels import new_run_id

GATE_FAILED = 3          # the plugin's exit code when the agent gate stops a session


class AbError(ValueError):
    """Bad ab arguments; str() is one line."""


@dataclass
class SideSpec(Spec):
    side: str = "A"


def order(repeat: int) -> list[str]:
    """ABBA blocks: AB, BA, AB, ... (a linear drift costs both sides the same on average)."""
    return [s for i in range(repeat) for s in ("AB" if i % 2 == 0 else "BA")]


def session_args(side: str, first_b: bool, run_id: str, expr: str | None, patch_args: list[str]) -> list[str]:
    args = ["--keep-cluster", "--run-id", run_id]
    if expr:
        args += ["-k", expr]
    if side == "B":
        args += patch_args + ([] if first_b else ["--no-agent-gate"])
    return args


def patch_args(agent_specs, dir_specs) -> list[str]:
    return [a for spec in agent_specs for a in ("--agent", spec)] + [a for spec in dir_specs for a in ("--agents", spec)]


class AbJob(Job):
    """A job whose sessions are the two sides; B stops after a failed gate."""

    def __init__(self, specs, reports_dir, extra, topology_name: str):
        super().__init__(specs, reports_dir, extra, command=pytest_command)
        self.job_dir = self.job_dir.with_name(self.job_dir.name.replace("job-", "ab-", 1) + f"-{topology_name}")
        self.gate_failed = False
        for spec, rec in zip(specs, self.records):
            rec["side"] = spec.side

    def run_one(self, i, spec, rec) -> None:
        if spec.side == "B" and self.gate_failed:
            self.say(f"session {i}: side B not run: its agent gate failed")
            return
        super().run_one(i, spec, rec)
        if spec.side == "B" and rec["exit_code"] == GATE_FAILED:
            self.gate_failed = True


def side_runs(job_dir: Path, records: list[dict]) -> dict[str, list[Path]]:
    runs = {"A": [], "B": []}
    for rec in records:
        if rec.get("run_dir") and (job_dir / rec["run_dir"] / "results.json").is_file():
            runs[rec["side"]].append(job_dir / rec["run_dir"])
    return runs


def gate_of(b_runs: list[Path]) -> list[dict]:
    for run in b_runs:
        gate = json.loads((run / "results.json").read_text())["run"].get("agent_gate")
        if gate:
            return gate
    return []


def compare(job_dir: Path, records: list[dict], confidence: float, min_effect: float, out=print) -> int:
    """The comparison of both sides, written next to the runs; exit 1 on a regression."""
    from .report import abcompare
    runs = side_runs(job_dir, records)
    gate = gate_of(runs["B"])
    failed_gate = [g for g in gate if not g["passed"] and not g.get("skipped")]
    for g in gate:
        tool = g.get("tool", "ocf-tester")
        out(f"gate: {g['agent']}: " + (f"{tool} skipped: {g['skipped']}" if g.get("skipped")
                                       else f"{tool} passed" if g["passed"] else f"{tool} FAILED rc={g['rc']}"))
    if failed_gate or not runs["A"] or not runs["B"]:
        side = "B" if failed_gate or runs["A"] else "A"
        why = "its agent gate failed" if failed_gate else "no session wrote results.json"
        out(f"REGRESSION: side {side} has no run: {why}")
        (job_dir / "comparison.txt").write_text(f"no comparison: side {side}: {why}\n"
                                                + "".join(f"{g['agent']}:\n{g.get('output', '')}\n" for g in gate))
        return 1
    a_docs = [json.loads((r / "results.json").read_text()) for r in runs["A"]]
    b_docs = [json.loads((r / "results.json").read_text()) for r in runs["B"]]
    cmp = abcompare.compare_sides(a_docs, b_docs, confidence=confidence, min_effect_s=min_effect)
    text = "\n".join([*cmp.notes, abcompare.text_table(cmp), abcompare.summary_line(cmp)])
    out(text)
    (job_dir / "comparison.txt").write_text(text + "\n")
    (job_dir / "comparison.json").write_text(json.dumps({**abcompare.to_json(cmp), "agent_gate": gate,
                                                         "runs": {k: [p.name for p in v] for k, v in runs.items()}},
                                                        indent=2) + "\n")
    (job_dir / "comparison.html").write_text(abcompare.html_page(
        cmp, "A (stock)", "B (patched)", extra_sections=[gate_section(gate)] if gate else ()))
    out(f"comparison: {job_dir / 'comparison.html'} (also .txt, .json)")
    return 1 if (cmp.regressions() or failed_gate) else 0


def gate_section(gate: list[dict]) -> str:
    from .report.html import esc
    items = "".join(f"<h3>{esc(g['agent'])} {esc(g.get('tool', 'ocf-tester'))}: "
                    f"{'skipped' if g.get('skipped') else 'passed' if g['passed'] else 'FAILED'}"
                    f"</h3><pre>{esc(g.get('skipped') or g.get('command', ''))}\n{esc(g.get('output', ''))}</pre>"
                    for g in gate)
    return f"<h2>Static gate (ocf-tester, and ocft where cases exist, on each patched agent)</h2>{items}"


def remove_cluster(topology, backend: str, run_id: str, log=print) -> None:
    from .ownership import unmark_kept
    from .run import ClusterRun
    run = ClusterRun(topology, backend=backend, run_id=run_id, log=log)
    run.lock.acquire(120, log=log)
    removed = run.down()
    unmark_kept(run_id)
    log(f"[ab] removed the A/B cluster {run_id} ({len(removed)} objects)")


def rejudge(job_dir: str, confidence: float, min_effect: float) -> int:
    """The comparison of a finished A/B again (other thresholds, a newer comparison): runs nothing."""
    path = Path(job_dir)
    try:
        records = json.loads((path / "job.json").read_text())["topologies"]
    except (OSError, ValueError, KeyError) as e:
        raise AbError(f"{job_dir}: not an A/B directory (job.json: {e})") from None
    if not any("side" in r for r in records):
        raise AbError(f"{job_dir}: a job without A/B sides (made by `harness job`, not `harness ab`)")
    return compare(path, records, confidence, min_effect)


def main(topology: str, agent_specs: list[str], dir_specs: list[str], expr: str | None, repeat: int,
         confidence: float, min_effect: float, reports_dir: str, backend: str, keep: bool, extra: list[str]) -> int:
    if repeat < 1:
        raise AbError(f"--repeat {repeat}: at least 1")
    if not 0.5 < confidence < 1:
        raise AbError(f"--confidence {confidence}: between 0.5 and 1 (e.g. 0.95)")
    try:
        topo = topo_mod.load_named(topology)
        agentpatch.parse_overrides(agent_specs, dir_specs, topo)     # bad input: one line, before any work
    except (topo_mod.TopologyError, agentpatch.AgentPatchError) as e:
        raise AbError(str(e)) from None
    if not agent_specs and not dir_specs:
        raise AbError("nothing to compare: give --agent ocf:PROVIDER:TYPE=PATH or --agents PROVIDER=DIR")
    check_args(extra)
    run_id = f"ab-{new_run_id()}"
    patches, specs, first_b = patch_args(agent_specs, dir_specs), [], True
    for side in order(repeat):
        specs.append(SideSpec(topology, session_args(side, first_b, run_id, expr, patches), side=side))
        first_b = first_b and side != "B"
    job = AbJob(specs, reports_dir, extra, topo.name)
    job.say(f"A/B of {', '.join(agent_specs + dir_specs)} on {topo.name}: {repeat} session(s) per side, "
            f"order {''.join(s.side for s in specs)}, cluster {run_id}")
    try:
        job.run()
    finally:
        if not keep:
            remove_cluster(topo, backend, run_id, log=lambda m: job.say(m))
    code = compare(job.job_dir, job.records, confidence, min_effect, out=lambda m: job.write((m + "\n").encode()))
    failed = [r for r in job.records if r["state"] == "ran" and r["exit_code"] not in (0, 1, GATE_FAILED)]
    if failed or job.interrupted:
        job.say(f"{len(failed)} session(s) crashed or were interrupted: see {job.job_dir}")
        return 2
    return code
