"""The self-contained run report (report.html): one file, no external resources,
pictures embedded as base64 SVG. Built from results.json plus the histories, so it
can be rebuilt offline with `python -m harness report html RESULTS.json`."""
from __future__ import annotations

import html
import os
import time
from pathlib import Path

from . import recheck, results as results_mod, timeline

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass,.fail,.other{color:#fff;padding:1px 6px;border-radius:3px;white-space:nowrap}
.pass{background:#2ca02c}.fail{background:#d62728}.other{background:#7f7f7f}
.muted{color:#777;font-size:12px}.warn{color:#b35900}.bad{color:#d62728}.good{color:#2ca02c}
pre{background:#f8f8f8;padding:8px;overflow-x:auto;font-size:12px}
img.timeline{width:100%;max-width:1400px;border:1px solid #eee}
code{font-size:12px}
"""


class Raw(str):
    """Already-rendered HTML: `cell()` does not escape it."""


def esc(value) -> str:
    return value if isinstance(value, Raw) else html.escape("" if value is None else str(value))


def seconds(value, missing: str = "—") -> str:
    return missing if value is None else f"{value:.2f} s"


def wall(value) -> str:
    return "—" if value is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def badge(text: str, kind: str) -> Raw:
    return Raw(f'<span class="{kind}">{esc(text)}</span>')


def outcome_badge(outcome) -> Raw:
    return badge(outcome or "not recorded", {"passed": "pass", "failed": "fail", "error": "fail"}.get(outcome, "other"))


def verdict_badge(verdict: dict) -> Raw:
    return badge("PASS", "pass") if verdict["passed"] else badge("FAIL", "fail")


def table(headers: list, rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{esc(c)}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


def anchor(test: str) -> str:
    return "s-" + "".join(c if c.isalnum() else "-" for c in test)


# ---------------------------------------------------------------- one scenario

def downtime_table(result: dict) -> str:
    target = result["verdict"]["target_s"]
    rows = []
    for probe, d in result["downtime"].items():
        within = d["recovered"] and (d["downtime_s"] or 0) <= target
        rows.append([probe, seconds(d["downtime_s"], "never recovered"), f"{target:g} s",
                     badge("within", "pass") if within else badge("exceeded", "fail"),
                     seconds(d["unavailable_s"]), f"{d['failures']}/{d['samples']}", f"{d['error_rate']:.1%}",
                     ", ".join(f"{k}×{v}" for k, v in d["errors"].items()) or "—",
                     " → ".join(d["served_by"]) or "—",
                     f"t={d['first_failure']}" if d["first_failure"] is not None else "—",
                     f"t={d['recovered_at']}" if d["recovered_at"] is not None else "—"])
    return table(["probe", "downtime", "target", "", "unavailable", "failed/samples", "error rate", "errors",
                  "served by", "first failure", "steady again"], rows, numeric={1, 4, 5, 6})


def vip_table(result: dict) -> str:
    rows = [[vip, ",".join(m["before"]) or "none", ",".join(m["after"] or []) or "none",
             seconds(m["move_s"], "did not move"), seconds(m["gap_s"]),
             Raw(f'<span class="bad">{m["max_holders"]}</span>') if m["max_holders"] > 1 else m["max_holders"]]
            for vip, m in result["vip"].items()]
    return table(["VIP", "held by before", "after", "moved after", "without holder", "max holders at once"],
                 rows, numeric={3, 4, 5}) if rows else ""


def stages_table(result: dict) -> str:
    rows = [[f"+{s['after_s']:.3f} s", f"t={s['t']}", s["stage"]] for s in result["stages"]]
    return table(["after fault start", "history time", "stage"], rows, numeric={0}) if rows else ""


def recheck_line(history, result: dict) -> str:
    w = result.get("window") or {}
    problems = recheck.mismatches(history, result) if history is not None else ["history missing"]
    span = (f"window t={w.get('start')}..{w.get('end') if w.get('end') is not None else 'end'}"
            + (f", events completed by t={w['until']} (when the scenario analysed)" if w.get("until") else ""))
    if not problems:
        return f'<p class="muted"><span class="good">✓</span> every figure above recomputed from the history ({esc(span)})</p>'
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return f'<div class="warn"><p>⚠ the history does not reproduce these figures ({esc(span)}):</p><ul>{items}</ul></div>'


def full_recovery(result: dict) -> str:
    if result["full_recovery_s"] is not None:
        return seconds(result["full_recovery_s"])
    all_recovered = all(d["recovered"] for d in result["downtime"].values())
    return "none needed (no probe failed)" if all_recovered else "never (a probe never recovered)"


def result_section(history, result: dict) -> str:
    v = result["verdict"]
    reasons = "".join(f"<li>{esc(r)}</li>" for r in v["reasons"])
    return (f"<h3>{esc(result['fault'])} on {esc(result['target'])} ({esc(result['fault_id'])}): {verdict_badge(v)}</h3>"
            + (f'<ul class="bad">{reasons}</ul>' if reasons else "")
            + f"<p>full recovery (fault start → every probe answering steadily): <b>{full_recovery(result)}</b>"
            + f" · probe interval {result['probe_interval_s']} s (figures are exact to one interval)</p>"
            + host_line(result) + downtime_table(result) + vip_table(result) + evacuation_section(result) + writes_section(result)
            + stages_table(result)
            + recheck_line(history, result))


def host_line(result: dict) -> str:
    """The host's CPU during the fault: on a small host nodes and probes share the cores."""
    h = result.get("host")
    if not h:
        return ""
    return (f"<p>host CPU ({h['cpus']} cores, sampled every 1 s): busy mean {h['busy_mean']:.0%}, "
            f"max {h['busy_max']:.0%}, load {h['load1_max']:.1f}; {h['saturated_s']} s at 95% or more; "
            f"failed client samples while saturated: {h['failed_while_saturated']} of {h['failed_samples']}</p>")


def writes_section(result: dict) -> str:
    """Writes during the fault: the verdict line, what the writers cost, each lost or stuck object."""
    w = result.get("writes")
    if not w:
        return ""
    if "readback_failed" in w:
        return (f"<h4>Writes during the fault</h4><p>{badge('FAIL', 'fail')} <b>read-back impossible: "
                f"{esc(w['readback_failed'])}</b>; {w['acknowledged']} acknowledged writes could not be checked</p>")
    cost = w.get("cost") or {}
    cost_text = (f" · {cost['writers']} writers, {cost['calls']} calls, {cost['calls_per_s']} calls/s, "
                 f"client CPU {cost['client_cpu_share']:.1%} of a core" if cost.get("calls_per_s") else "")
    rows = [[p["type"], p["obj"], p["key"], p["id"] or "—", p["state"] or "—", p["reason"]] for p in w["problems"]]
    return (f"<h4>Writes during the fault</h4><p>{badge('PASS', 'pass') if w['passed'] else badge('FAIL', 'fail')} "
            f"<b>{esc(w['line'])}</b> · each writer every {w.get('interval_s', '?')} s{esc(cost_text)}</p>"
            + (table(["problem", "object", "key", "id", "last state", "why"], rows) if rows else ""))


def evacuation_section(result: dict) -> str:
    if not result.get("evacuation"):
        return ""
    from .evacchart import section        # it imports this module's helpers
    return section(result["evacuation"])


def schedule_table(schedule: list) -> str:
    def t(v):
        return "—" if v is None else f"t={v}"
    rows = [[w["id"], w["fault"], w["target"], t(w["start"]), t(w["applied"]), t(w["heal"]), t(w["end"]),
             seconds(w["end"] - w["start"]) if w["end"] is not None and w["start"] is not None else "not healed"]
            for w in schedule]
    return table(["fault", "kind", "target", "start", "applied", "heal requested", "end", "start→end"], rows)


def scenario_body(scenario: dict, history) -> str:
    """The per-scenario block; also used as pytest-html extra."""
    parts = []
    if scenario.get("message"):
        parts.append(f"<pre>{esc(scenario['message'])}</pre>")
    if history is None:
        parts.append('<p class="muted">no history: the scenario recorded nothing</p>')
        return "".join(parts)
    parts.append(f"<h3>Fault schedule</h3>{schedule_table(scenario['schedule'])}" if scenario["schedule"]
                 else '<p class="muted">no fault was injected</p>')
    picture = timeline.svg(history, scenario["schedule"], scenario["results"], scenario["test"])
    parts.append(f'<img class="timeline" alt="availability timeline of {esc(scenario["test"])}" '
                 f'src="{timeline.data_uri(picture)}">')
    parts += [result_section(history, r) for r in scenario["results"]]
    if not scenario["results"]:
        parts.append('<p class="muted">the scenario analysed no fault (no figures)</p>')
    return "".join(parts)


def scenario_section(scenario: dict, history, base: str = ".", changed: bool = False) -> str:
    href = _href(base, scenario["history"] or "")
    link = (f'<a href="{esc(href)}">{esc(scenario["history"])}</a>'
            f' <span class="muted">sha256 {esc(scenario["history_sha256"])}</span>') if scenario["history"] else "—"
    took = f" · {scenario['duration_s']:.1f} s" if scenario.get("duration_s") is not None else ""
    return (f'<h2 id="{anchor(scenario["test"])}">{esc(scenario["test"])} {outcome_badge(scenario["outcome"])}</h2>'
            f'<p class="muted">raw history: {link}{took}</p>'
            + ('<p class="warn">⚠ the history file changed since results.json was written (checksum differs)</p>'
               if changed else "") + scenario_body(scenario, history))


# ---------------------------------------------------------------- the run

def summary_table(doc: dict) -> str:
    rows = []
    for s in doc["scenarios"]:
        link = Raw(f'<a href="#{anchor(s["test"])}">{esc(s["test"])}</a>')
        if not s["results"]:
            rows.append([link, outcome_badge(s["outcome"]), "—", "—", "—", "—", "—"])
        for r in s["results"]:
            worst = max((d["downtime_s"] for d in r["downtime"].values() if d["downtime_s"] is not None), default=None)
            never = [p for p, d in r["downtime"].items() if not d["recovered"]]
            moves = ", ".join(f"{v} {seconds(m['move_s'], 'stayed')}" for v, m in r["vip"].items()) or "—"
            rows.append([link, outcome_badge(s["outcome"]), f"{r['fault']} on {r['target']}", verdict_badge(r["verdict"]),
                         f"never recovered: {', '.join(never)}" if never else seconds(worst),
                         seconds(r["full_recovery_s"]), moves])
    return table(["scenario", "pytest", "fault", "verdict", "worst downtime", "full recovery", "VIP moved"], rows)


def facts_table(run: dict, base: str = ".") -> str:
    timings = run.get("timings") or {}
    rows = [["topology", run["topology"] or "—"], ["backend", run["backend"] or "—"], ["run id", run["run_id"] or "—"],
            ["seed", run["seed"] if run["seed"] is not None else "none (faults are scheduled, not random)"],
            ["started", wall(run["started_wall"])], ["finished", wall(run["finished_wall"])],
            ["pytest exit status", "—" if run["exit_status"] is None else run["exit_status"]],
            ["cluster bring-up", seconds(timings.get("bring_up_s"))],
            ["JUnit XML", Raw(f'<a href="{esc(_href(base, run["junit"]))}">{esc(run["junit"])}</a>') if run["junit"] else "—"]]
    pkgs = run.get("packages")
    rows.append([f"packages (on {run['packages_node']})" if pkgs else "packages",
                 ", ".join(f"{k} {v}" for k, v in pkgs.items()) if pkgs else "not recorded"])
    rows += [[f"agent {a['agent']}", Raw(agent_cell(a))] for a in run["resource_agents"]]
    rows += [[f"gate {g['agent']} ({g.get('tool', 'ocf-tester')})", gate_cell(g)] for g in run.get("agent_gate") or ()]
    rows += [[f"host {k}", v or "—"] for k, v in (run.get("host") or {}).items()]
    rows += [["not recorded", e] for e in run["fact_errors"]]
    return table(["fact", "value"], rows)


def agent_cell(a: dict) -> str:
    """The installed file's hash; for a patched agent also the stock hash it replaced."""
    cell = f"<code>{esc(a['sha256'] or 'checksum missing')}</code> {esc(a['path'])} (used by {esc(', '.join(a['resources']))})"
    if a.get("stock_sha256"):
        cell = (f"{badge('PATCHED', 'other')} {cell}<br>from {esc(a.get('patched_from') or '?')}; "
                f"stock <code>{esc(a['stock_sha256'])}</code>")
    return cell


def gate_cell(g: dict) -> str:
    if g.get("skipped"):
        return f"skipped: {g['skipped']}"
    return f"on {g.get('node')}: {'passed' if g['passed'] else 'FAILED (rc=%s)' % g.get('rc')}"


def resets_section(run: dict) -> str:
    """Cluster resets between scenarios: which scenario left damage, why, how it was repaired."""
    resets = run.get("resets") or []
    if not resets:
        return ""
    rows = [[r["after"], r["reason"], Raw("<br>".join(esc(s) for s in r["steps"])),
             badge("ok", "pass") if r["ok"] else badge("FAILED", "fail"), seconds(r["took_s"])] for r in resets]
    return "<h2>Cluster resets</h2>" + table(["after scenario", "reason", "steps", "outcome", "took"], rows, {4})


def _href(base: str, path: str) -> str:
    return path if base == "." or os.path.isabs(path) else f"{base}/{path}"


def _changed(results_path, scenario: dict) -> bool:
    path = results_mod.history_path(results_path, scenario)
    return bool(path and scenario["history_sha256"] and results_mod.sha256_file(path) != scenario["history_sha256"])


def render(doc: dict, results_path: str | Path, out_dir: str | Path | None = None) -> str:
    """The page; links to histories are relative to `out_dir` (default: beside results.json)."""
    run = doc["run"]
    base = Path(os.path.relpath(Path(results_path).parent, out_dir or Path(results_path).parent)).as_posix()
    sections = [scenario_section(s, results_mod.load_history(results_path, s), base, _changed(results_path, s))
                for s in doc["scenarios"]]
    title = f"HA failover report: {run['topology'] or '?'} ({run['run_id'] or '?'})"
    body = (f"<h1>{esc(title)}</h1><p class=muted>{esc(doc['generated_by'])}, results schema "
            f"{doc['schema_version']}; every figure comes from the raw histories linked below</p>"
            f"<h2>Scenarios</h2>{summary_table(doc)}{resets_section(run)}<h2>Run</h2>{facts_table(run, base)}"
            + "".join(sections))
    return page(title, body)


def write(results_path: str | Path, out: str | Path | None = None) -> Path:
    """report.html next to results.json (or at `out`)."""
    results_path = Path(results_path)
    doc = results_mod.load(results_path)
    out = Path(out) if out else results_path.parent / "report.html"
    out.write_text(render(doc, results_path, out.parent))
    return out
