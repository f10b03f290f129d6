"""One summary of a job (several pytest sessions, one per topology): outcome counts,
failures with their one-line message, expected failures with their reason, cluster
resets and where the time went.

Inputs are what the sessions left, so the summary can be rebuilt at any time:
each run directory's results.json (and junit.xml, which tells an expected failure
from a skip in files written before results.json did), plus the job's own record
of what it ran (job.json, written by `harness.job`: exit codes, wall times,
how many tests each session selected). A topology is described by a *record*:

    {"topology", "args", "state": "ran"|"interrupted"|"not run", "exit_code",
     "wall_s", "run_dir", "selected"}
"""
from __future__ import annotations

import json
import re
import signal
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from . import results

PHASE_ORDER = ("bring_up", "setup", "baseline", "fault", "recovery_wait", "analysis", "settle", "audit", "clients_ready", "reset")
COUNTS = ("passed", "failed", "error", "xfailed", "xpassed", "skipped", "not_run")
COUNT_TITLES = ("passed", "failed", "errors", "xfailed", "xpassed", "skipped", "not run")
OK_STATUS = "passed"
TOP_N = 5
JOB_RECORD = "job.json"
# worst first: a test reported twice (junit: call failure + teardown error) keeps the worst
SEVERITY = ("error", "failed", "xpassed", "xfailed", "skipped", "passed")


# ---------------------------------------------------------------- reading the run directories

def records_from_dirs(dirs) -> tuple[list[dict], dict]:
    """Records of every topology found in DIRs (job directories, run directories, or
    directories holding run directories) and the job metadata of the last job.json."""
    records, job = [], {}
    for d in map(Path, dirs):
        if (d / JOB_RECORD).is_file():
            job = json.loads((d / JOB_RECORD).read_text())
            records += [_resolve_run_dir(r, d) for r in job.get("topologies", [])]
        elif (d / "results.json").is_file() or (d / "junit.xml").is_file():
            records.append(record_from_run_dir(d))
        elif d.is_dir():
            runs = sorted(p for p in d.iterdir() if (p / "results.json").is_file() or (p / "junit.xml").is_file())
            records += [record_from_run_dir(p) for p in runs]
        else:
            raise results.ResultsError(f"{d}: no such directory")
    return records, {k: v for k, v in job.items() if k != "topologies"}


def _resolve_run_dir(record: dict, job_dir: Path) -> dict:
    # job.json names run directories relative to itself, so a job directory can move
    if record.get("run_dir") and not Path(record["run_dir"]).is_absolute():
        return {**record, "run_dir": str(job_dir / record["run_dir"])}
    return record


def record_from_run_dir(run_dir: Path) -> dict:
    """A record for a run directory that no job recorded: exit status and wall time from results.json."""
    run = {}
    try:
        run = results.read_json(Path(run_dir) / "results.json").get("run") or {}
    except (results.ResultsError, AttributeError):
        pass
    started, finished = run.get("started_wall"), run.get("finished_wall")
    name = run.get("topology") or re.sub(r"^\d{8}-\d{6}-", "", Path(run_dir).name)
    if run.get("backend") not in (None, "docker"):
        name += f" on {run['backend']}"          # the same topology may run on two backends
    return {"topology": name, "args": [], "state": "ran", "exit_code": run.get("exit_status"),
            "wall_s": finished - started if started and finished else None, "run_dir": str(run_dir),
            "selected": None}


def load_doc(run_dir: str | None) -> tuple[dict | None, str | None]:
    """(results document, None) or (None, why there is none)."""
    if not run_dir:
        return None, "no run directory"
    try:
        return results.load(Path(run_dir) / "results.json"), None
    except results.ResultsError as e:
        return None, str(e)


def junit_tests(path: Path | None) -> dict[str, tuple[str, str | None]]:
    """{test id: (outcome, message)} from a JUnit XML file; {} if it is missing or unreadable."""
    if path is None or not path.is_file():
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    found = {}
    for case in root.iter("testcase"):
        test = _nodeid(case.get("classname", ""), case.get("name", ""))
        outcome, message = _junit_outcome(case)
        if test in found and SEVERITY.index(found[test][0]) <= SEVERITY.index(outcome):
            continue
        found[test] = (outcome, message)
    return found


def _junit_outcome(case) -> tuple[str, str | None]:
    for tag, outcome in (("error", "error"), ("failure", "failed")):
        el = case.find(tag)
        if el is not None:
            return outcome, el.get("message") or (el.text or "").strip() or None
    el = case.find("skipped")
    if el is None:
        return "passed", None
    if el.get("type") == "pytest.xfail":
        return "xfailed", el.get("message")
    if "passes unexpectedly" in (el.get("message") or ""):
        return "xpassed", None
    return "skipped", el.get("message")


def _nodeid(classname: str, name: str) -> str:
    """pytest's node id back from junit's classname (dotted module path, then classes)."""
    parts = classname.split(".")
    classes = []
    while len(parts) > 1 and parts[-1][:1].isupper():
        classes.insert(0, parts.pop())
    return "::".join(["/".join(parts) + ".py", *classes, name])


def run_paths(run_dir: str | None, doc: dict | None) -> dict:
    """report.html, results.json and junit paths of a run directory (null where missing)."""
    if not run_dir:
        return {"report": None, "results": None, "junit": None}
    d = Path(run_dir)
    junit = (doc or {}).get("run", {}).get("junit") or "junit.xml"
    junit_path = Path(junit) if Path(junit).is_absolute() else d / junit
    return {"report": _if_file(d / "report.html"), "results": _if_file(d / "results.json"),
            "junit": _if_file(junit_path)}


def _if_file(p: Path) -> str | None:
    return str(p) if p.is_file() else None


# ---------------------------------------------------------------- figures of one topology

def tests_of(doc: dict | None, junit: dict) -> list[dict]:
    """Every test the session reported: results.json's scenarios, corrected and completed by junit.xml."""
    tests = []
    for s in (doc or {}).get("scenarios", []):
        outcome, message = s.get("outcome"), s.get("message")
        j = junit.get(s["test"])
        if j and (outcome is None or (outcome == "skipped" and j[0] in ("xfailed", "xpassed"))):
            outcome, message = j            # recorded before results.json knew xfail, or not at all
        tests.append({"test": s["test"], "outcome": outcome, "message": message,
                      "duration_s": s.get("duration_s"), "phases": s.get("phases") or {},
                      "results": s.get("results", [])})
    seen = {t["test"] for t in tests}
    tests += [{"test": t, "outcome": o, "message": m, "duration_s": None, "phases": {}, "results": []}
              for t, (o, m) in junit.items() if t not in seen]
    return tests


def count(tests: list[dict], selected: int | None) -> dict:
    c = dict.fromkeys(COUNTS, 0)
    for t in tests:
        c[t["outcome"] if t["outcome"] in c else "not_run"] += 1
    if selected is not None:        # selected but never reported: the session stopped early
        c["not_run"] += max(0, selected - len(tests))
    return c


def status(record: dict, counts: dict | None, doc: dict | None) -> str:
    """passed, failed, incomplete (tests left unrun), no tests, crashed, interrupted or not run."""
    state, code = record.get("state", "ran"), record.get("exit_code")
    if state == "not run":
        return "not run"
    if state == "interrupted" or code == 2:
        return "interrupted"
    if code == 5:
        return "no tests"
    if doc is None:
        return "crashed"
    if counts["failed"] or counts["error"] or code not in (0, None):
        return "failed"
    if counts["not_run"]:       # green means every selected test ran
        return "incomplete"
    return OK_STATUS


def explain(record: dict, doc: dict | None, why: str | None) -> str | None:
    """One line on why a topology has no usable results, or None."""
    code, state = record.get("exit_code"), record.get("state", "ran")
    if state == "not run":
        return "not started (the job was interrupted before it)"
    if doc is not None:
        return None
    if code is None:
        return f"no results ({why})"
    if code < 0:
        return f"pytest was killed by {_signame(-code)} before writing results.json"
    return f"pytest exited with {code} before writing results.json ({why})"


def _signame(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def one_line(message: str | None, limit: int = 200) -> str:
    """The line of a pytest failure text that says what went wrong: the first `E ` line
    (the exception), prefixed with the phase ([call], [teardown]) it came from."""
    if not message:
        return ""
    phase = re.match(r"\[(setup|call|teardown)\] ", message)
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    errors = [ln[1:].strip() for ln in lines if ln.startswith("E ")]
    line = errors[0] if errors else lines[-1] if lines else ""
    if phase and not line.startswith(phase.group(0)):
        line = f"{phase.group(0)}{line}"
    return line if len(line) <= limit else line[:limit - 1] + "…"


def phase_sums(tests: list[dict]) -> dict[str, float]:
    sums: dict[str, float] = {}
    for t in tests:
        for name, s in t["phases"].items():
            if s is not None:
                sums[name] = round(sums.get(name, 0.0) + s, 3)
    return {name: sums[name] for name in phase_order(sums)}


def with_bring_up(phases: dict[str, float], doc: dict | None) -> dict[str, float]:
    """The cluster's bring-up as a phase of its own (run.timings): it counted as the first
    scenario's setup when that scenario records phases, and nowhere when it does not (an
    OpenStack layout's bring-up of 3-5 min hid in the OCF agent test's duration)."""
    bring_up = (((doc or {}).get("run") or {}).get("timings") or {}).get("bring_up_s")
    if not bring_up:
        return phases
    out = dict(phases)
    if out.get("setup", 0.0) >= bring_up:
        out["setup"] = round(out["setup"] - bring_up, 3)
    out["bring_up"] = round(bring_up, 3)
    return {name: out[name] for name in phase_order(out)}


def phase_order(names) -> list[str]:
    """The harness's phases in the order they happen, then any other name alphabetically."""
    names = set(names)
    return [p for p in PHASE_ORDER if p in names] + sorted(names - set(PHASE_ORDER))


def fault_window_s(tests: list[dict]) -> float:
    """Sum of fault_end - fault_start over every analysed fault (unhealed faults left out)."""
    return round(sum(r["fault_end"] - r["fault_start"] for t in tests for r in t["results"]
                     if r.get("fault_end") is not None and r.get("fault_start") is not None), 3)


def slowest(tests: list[dict], n: int = TOP_N) -> list[dict]:
    timed = sorted((t for t in tests if t["duration_s"]), key=lambda t: -t["duration_s"])
    return [{"test": t["test"], "duration_s": t["duration_s"],
             "phases": {p: t["phases"][p] for p in phase_order(t["phases"])}} for t in timed[:n]]


def topology_summary(record: dict) -> dict:
    doc, why = load_doc(record.get("run_dir")) if record.get("state") != "not run" else (None, None)
    paths = run_paths(record.get("run_dir"), doc)
    tests = tests_of(doc, junit_tests(Path(paths["junit"]) if paths["junit"] else None))
    counts = count(tests, record.get("selected")) if doc is not None or tests else None
    timed = [t["duration_s"] for t in tests if t["duration_s"] is not None]
    scenario_s = round(sum(timed), 3) if timed else None
    fault_s = fault_window_s(tests)
    return {"topology": record["topology"], "args": record.get("args", []),
            "status": status(record, counts or dict.fromkeys(COUNTS, 0), doc),
            "exit_code": record.get("exit_code"), "wall_s": record.get("wall_s"),
            "note": explain(record, doc, why), "run_dir": record.get("run_dir"), **paths, "counts": counts,
            "problems": [{"test": t["test"], "outcome": t["outcome"], "message": one_line(t["message"])}
                         for t in tests if t["outcome"] in ("failed", "error")],
            "xfails": [{"test": t["test"], "reason": one_line(t["message"])}
                       for t in tests if t["outcome"] == "xfailed"],
            "xpasses": [t["test"] for t in tests if t["outcome"] == "xpassed"],
            "resets": ((doc or {}).get("run") or {}).get("resets") or [],
            "phases": with_bring_up(phase_sums(tests), doc), "scenario_s": scenario_s, "fault_window_s": fault_s,
            "scenario_s_per_fault_s": round(scenario_s / fault_s, 2) if fault_s and scenario_s else None,
            "slowest": slowest(tests)}


# ---------------------------------------------------------------- the job

def build(records: list[dict], job: dict | None = None) -> dict:
    tops = [topology_summary(r) for r in records]
    failed = [t["topology"] for t in tops if t["status"] != OK_STATUS]
    job = job or {}
    started, finished = job.get("started_wall"), job.get("finished_wall")
    return {"generated_wall": round(time.time(), 3), "job_dir": job.get("job_dir"),
            "wall_s": round(finished - started, 3) if started and finished else None,
            "interrupted": job.get("interrupted"), "extra_args": job.get("extra_args", []),
            "ok": bool(tops) and not failed and not job.get("interrupted"),
            "not_passed": failed, "topologies": tops}


def exit_code(summary: dict) -> int:
    if summary.get("interrupted"):
        return 128 + getattr(signal, summary["interrupted"], signal.SIGINT)
    return 0 if summary["ok"] else 1


def write(summary: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "job-summary.json", out_dir / "job-summary.md"
    js.write_text(json.dumps(summary, indent=2) + "\n")
    md.write_text(markdown(summary))
    return js, md


# ---------------------------------------------------------------- rendering

def dur(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(round(s)), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def _show_status(status: str) -> str:
    return status if status == OK_STATUS else status.upper()


def _name(t: dict) -> str:
    return t["topology"] + (f" ({' '.join(t['args'])})" if t["args"] else "")


def _count_cells(t: dict) -> list[str]:
    return [str(t["counts"][k]) if t["counts"] else "-" for k in COUNTS]


def _table_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    head = ["topology", "status", *COUNT_TITLES, "wall", "exit"]
    rows = [[_name(t), _show_status(t["status"]), *_count_cells(t), dur(t["wall_s"]),
             "-" if t["exit_code"] is None else str(t["exit_code"])] for t in summary["topologies"]]
    return head, rows


def _phase_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    phases = phase_order({p for t in summary["topologies"] for p in t["phases"]})
    head = ["topology", *phases, "scenarios", "fault windows", "scenario s per fault s"]
    rows = [[t["topology"], *[dur(t["phases"].get(p)) for p in phases], dur(t["scenario_s"]),
             dur(t["fault_window_s"]), "-" if t["scenario_s_per_fault_s"] is None else f"{t['scenario_s_per_fault_s']:.1f}"]
            for t in summary["topologies"] if t["counts"] is not None]
    return head, rows


def _aligned(head: list[str], rows: list[list[str]], indent: str = "", left: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first `left` ones are names, the rest numbers."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: indent + "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(head), *map(fmt, rows)]


def _wall(summary: dict) -> str:
    return f" (job wall time {dur(summary['wall_s'])})" if summary.get("wall_s") is not None else ""


def _split(phases: dict) -> str:
    return ", ".join(f"{p} {dur(s)}" for p, s in phases.items()) or "no phases recorded"


def _reset_line(r: dict) -> str:
    steps = "; ".join(r.get("steps") or []) or "no steps"
    return (f"after {r.get('after') or '(start)'}: {r.get('reason')} -> {'ok' if r.get('ok') else 'FAILED'} "
            f"in {dur(r.get('took_s'))} ({steps})")


def verdict(summary: dict) -> str:
    n = len(summary["topologies"])
    if summary["ok"]:
        return f"job passed: all {n} topologies passed"
    why = ", ".join(f"{t['topology']} {t['status']}" for t in summary["topologies"] if t["status"] != OK_STATUS)
    stop = f"interrupted by {summary['interrupted']}; " if summary.get("interrupted") else ""
    return f"job FAILED: {stop}{why or 'no topology ran'}"


def text(summary: dict) -> str:
    tops = summary["topologies"]
    out = [f"{'=' * 30} job summary: {len(tops)} topologies {'=' * 30}"]
    if summary.get("job_dir"):
        out.append(f"job directory: {summary['job_dir']}" + _wall(summary))
    out += _aligned(*_table_rows(summary), left=2)
    for t in tops:
        out.append(f"{t['topology']}:")
        if t["note"]:
            out.append(f"  {t['note']}")
        out += [f"  {k:<8}{t[k]}" for k in ("report", "results", "junit") if t[k]]
    out += _problem_lines(tops, lambda line: f"  {line}", lambda title: ["", f"{title}:"])
    head, rows = _phase_rows(summary)
    if rows:
        out += ["", "time per phase (sum over scenarios):", *_aligned(head, rows, "  ")]
    width = max((len(t["topology"]) for t in tops), default=0)
    slow = [f"  {t['topology']:<{width}}  {dur(s['duration_s']):>7}  {s['test']}  ({_split(s['phases'])})"
            for t in tops for s in t["slowest"]]
    if slow:
        out += ["", f"slowest scenarios (top {TOP_N} per topology):", *slow]
    out += ["", verdict(summary)]
    return "\n".join(out) + "\n"


def _problem_lines(tops: list[dict], item, heading) -> list[str]:
    """Failures, expected failures and resets: the same lines in text and markdown."""
    out = []
    sections = (
        ("failures and errors", lambda t: [f"{t['topology']} {p['outcome'].upper()} {p['test']}: {p['message']}"
                                           for p in t["problems"]]),
        ("expected failures", lambda t: [f"{t['topology']} {x['test']}: {x['reason']}" for x in t["xfails"]]
         + [f"{t['topology']} XPASS {x}: expected to fail, passed" for x in t["xpasses"]]),
        ("cluster resets", lambda t: [f"{t['topology']} {_reset_line(r)}" for r in t["resets"]]))
    for title, lines_of in sections:
        lines = [line for t in tops for line in lines_of(t)]
        if lines:
            out += [*heading(f"{title} ({len(lines)})"), *map(item, lines)]
    return out


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda c: c.replace("|", "\\|")
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *["| " + " | ".join(map(esc, r)) + " |" for r in rows]]


def markdown(summary: dict) -> str:
    tops = summary["topologies"]
    out = [f"# Job summary: {len(tops)} topologies", "", f"**{verdict(summary)}**", ""]
    if summary.get("job_dir"):
        out += [f"Job directory: `{summary['job_dir']}`" + _wall(summary), ""]
    out += _md_table(*_table_rows(summary))
    out += ["", "| topology | report | results | junit | note |", "|---|---|---|---|---|"]
    out += [f"| {t['topology']} | " + " | ".join(f"`{t[k]}`" if t[k] else "-" for k in ("report", "results", "junit"))
            + f" | {t['note'] or ''} |" for t in tops]
    out += _problem_lines(tops, lambda line: f"- {line}", lambda title: ["", f"## {title[0].upper()}{title[1:]}", ""])
    head, rows = _phase_rows(summary)
    if rows:
        out += ["", "## Time per phase (sum over scenarios)", "", *_md_table(head, rows)]
    slow = [f"- {t['topology']} {dur(s['duration_s'])} `{s['test']}` ({_split(s['phases'])})"
            for t in tops for s in t["slowest"]]
    if slow:
        out += ["", f"## Slowest scenarios (top {TOP_N} per topology)", "", *slow]
    return "\n".join(out) + "\n"
