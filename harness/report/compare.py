"""What got worse or better between two runs, per scenario, fault and probe.

A figure regressed when it grew by more than `threshold_s` seconds AND more than
`threshold_pct` percent (both, so that neither sub-second jitter on a short outage
nor a small relative change on a long one trips it). A probe that recovered in the
base run and never recovers in the new one, and a verdict going from PASS to FAIL,
are always regressions.
"""
from __future__ import annotations

from dataclasses import dataclass

from .html import Raw, badge, esc, page, table

NEVER = "never"            # a probe that never answered steadily again

REGRESSION, WORSE, SAME, BETTER, IMPROVED, CHANGED, MISSING, ADDED = (
    "REGRESSION", "worse", "same", "better", "improved", "changed", "missing", "added")


@dataclass
class Row:
    scenario: str
    fault: str
    metric: str
    base: object
    new: object
    status: str
    change: str = ""


# ---------------------------------------------------------------- figures per key

def fault_keys(scenario: dict) -> dict:
    """{"node-kill #1": result}: fault ids are global counters, so faults are matched
    by kind and order within the scenario."""
    keys, seen = {}, {}
    for r in scenario["results"]:
        seen[r["fault"]] = seen.get(r["fault"], 0) + 1
        keys[f"{r['fault']} #{seen[r['fault']]}"] = r
    return keys


def probe_value(d: dict):
    return d["downtime_s"] if d["recovered"] else NEVER


def full_recovery_value(result: dict):
    if result["full_recovery_s"] is not None:
        return result["full_recovery_s"]
    # None means either no probe failed (nothing to recover) or one never recovered.
    return NEVER if any(not d["recovered"] for d in result["downtime"].values()) else 0.0


def metrics(result: dict) -> dict:
    """{metric name: value} of one fault."""
    out = {f"downtime {p}": probe_value(d) for p, d in result["downtime"].items()}
    out["full recovery"] = full_recovery_value(result)
    out.update({f"VIP {v} move": m["move_s"] for v, m in result["vip"].items()})
    out["verdict"] = "PASS" if result["verdict"]["passed"] else "FAIL"
    return out


# ---------------------------------------------------------------- judging one figure

def judge(metric: str, base, new, threshold_s: float, threshold_pct: float) -> tuple[str, str]:
    """(status, change) of one figure."""
    if metric == "verdict":
        if base == new:
            return SAME, ""
        return (REGRESSION, "PASS → FAIL") if new == "FAIL" else (IMPROVED, "FAIL → PASS")
    if base == new:
        return SAME, ""
    if new == NEVER:
        return REGRESSION, "now never recovers"
    if base == NEVER:
        return IMPROVED, "recovers now"
    if base is None or new is None:      # a VIP that moved in one run only
        return CHANGED, "no longer moves" if new is None else "moves now"
    return _judge_numbers(base, new, threshold_s, threshold_pct)


def _judge_numbers(base: float, new: float, threshold_s: float, threshold_pct: float) -> tuple[str, str]:
    delta = new - base
    pct = (delta / base * 100) if base > 0 else float("inf")
    change = f"{delta:+.3f} s" + (f" ({pct:+.1f}%)" if base > 0 else "")
    beyond = abs(delta) > threshold_s and abs(pct) > threshold_pct
    if delta > 0:
        return (REGRESSION if beyond else WORSE), change
    return (IMPROVED if beyond else BETTER), change


# ---------------------------------------------------------------- two documents

def compare(base_doc: dict, new_doc: dict, threshold_s: float = 1.0, threshold_pct: float = 20.0) -> list[Row]:
    rows: list[Row] = []
    new_by_test = {s["test"]: s for s in new_doc["scenarios"]}
    for b in base_doc["scenarios"]:
        n = new_by_test.get(b["test"])
        if n is None:
            rows += [Row(b["test"], k, "scenario", "run", "not run", MISSING) for k in fault_keys(b)]
            continue
        rows += _compare_scenario(b, n, threshold_s, threshold_pct)
    base_tests = {s["test"] for s in base_doc["scenarios"]}
    for n in new_doc["scenarios"]:
        if n["test"] not in base_tests:
            rows += [Row(n["test"], k, "scenario", "not run", "run", ADDED) for k in fault_keys(n)]
    return rows


def _compare_scenario(b: dict, n: dict, threshold_s: float, threshold_pct: float) -> list[Row]:
    rows, new_faults = [], fault_keys(n)
    for key, br in fault_keys(b).items():
        nr = new_faults.get(key)
        if nr is None:
            # The scenario ran but produced no figures for this fault: it broke.
            rows.append(Row(b["test"], key, "figures", "recorded", f"none (test {n['outcome'] or '?'})", REGRESSION))
            continue
        bm, nm = metrics(br), metrics(nr)
        for metric, bv in bm.items():
            if metric not in nm:
                rows.append(Row(b["test"], key, metric, bv, "not measured", MISSING))
                continue
            status, change = judge(metric, bv, nm[metric], threshold_s, threshold_pct)
            rows.append(Row(b["test"], key, metric, bv, nm[metric], status, change))
        rows += [Row(b["test"], key, m, "not measured", v, ADDED) for m, v in nm.items() if m not in bm]
    rows += [Row(n["test"], key, "figures", "none", "recorded", ADDED) for key in new_faults if key not in fault_keys(b)]
    return rows


def regressions(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == REGRESSION]


# ---------------------------------------------------------------- output

def fmt(value) -> str:
    if value is None:
        return "did not move"
    return f"{value:.2f} s" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def short(test: str) -> str:
    return test.split("::", 1)[-1]


def text_table(rows: list[Row]) -> str:
    header = ("scenario", "fault", "metric", "base", "new", "change", "status")
    return columns(header, [(short(r.scenario), r.fault, r.metric, fmt(r.base), fmt(r.new), r.change, r.status)
                            for r in rows])


def columns(header, rows) -> str:
    """Plain-text table: every column padded to its widest cell."""
    cells = [header, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(header))).rstrip() for c in cells)


def summary(rows: list[Row], threshold_s: float, threshold_pct: float) -> str:
    counts = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return (f"{len(regressions(rows))} regression(s) beyond {threshold_s:g} s and {threshold_pct:g}% "
            f"({parts or 'nothing to compare'})")


STATUS_CLASS = {REGRESSION: "fail", WORSE: "other", IMPROVED: "pass", BETTER: "other", MISSING: "other",
                CHANGED: "other", ADDED: "other"}


def html_page(rows: list[Row], base_name: str, new_name: str, threshold_s: float, threshold_pct: float,
              notes: list[str] = ()) -> str:
    body_rows = [[short(r.scenario), r.fault, r.metric, fmt(r.base), fmt(r.new), r.change,
                  badge(r.status, STATUS_CLASS[r.status]) if r.status in STATUS_CLASS else r.status]
                 for r in rows]
    notes_html = "".join(f'<p class="warn">{esc(n)}</p>' for n in notes)
    body = (f"<h1>Comparison</h1><p>base <code>{esc(base_name)}</code> → new <code>{esc(new_name)}</code></p>"
            f"{notes_html}<p><b>{esc(summary(rows, threshold_s, threshold_pct))}</b></p>"
            + table(["scenario", "fault", "metric", "base", "new", "change", "status"], body_rows, numeric={3, 4})
            + Raw(f'<p class="muted">{esc(__doc__.strip())}</p>'))
    return page(f"compare {base_name} → {new_name}", body)


def notes(base_doc: dict, new_doc: dict) -> list[str]:
    b, n = base_doc["run"], new_doc["run"]
    out = []
    if b["topology"] != n["topology"]:
        out.append(f"note: comparing topology {b['topology']} with {n['topology']}")
    if (b.get("packages") or {}) != (n.get("packages") or {}) and b.get("packages") and n.get("packages"):
        changed = sorted(k for k in set(b["packages"]) | set(n["packages"])
                         if b["packages"].get(k) != n["packages"].get(k))
        out.append("note: package versions differ: " + ", ".join(
            f"{k} {b['packages'].get(k, '-')} → {n['packages'].get(k, '-')}" for k in changed))
    return out
