"""Side A (e.g. the stock agents) against side B (a patch), several runs per side.

Per scenario: whether it passes. A scenario that passes on A and fails on B is a
regression whatever the timings (a skipped run counts as not failing).
Per scenario, fault and figure: the shift of B against A (Hodges-Lehmann), a bootstrap
interval of the difference of medians and an exact rank test. B is "slower" only when
the test is significant at the chosen confidence AND the shift reaches the minimum
effect, so neither chance nor a significant but negligible shift trips it. A probe that
never recovers on B but always did on A is a slower regression whatever the test says.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import abstats, results
from .compare import NEVER, columns, fault_keys, fmt, metrics, short
from .html import Raw, badge, esc, outcome_badge, page, table

NOT_RUN, NOT_RECORDED = "not run", "not recorded"
BAD = {"failed", "error", NOT_RUN, NOT_RECORDED}      # skipped, xfailed, xpassed: not a failure

REGRESSION, FIXED, BOTH_FAIL, SAME = "REGRESSION", "fixed", "fails on both", "same"
SLOWER, FASTER, NO_DIFF, NOT_COMPARABLE = "slower", "faster", "no detectable difference", "not comparable"


@dataclass
class OutcomeRow:
    scenario: str
    a: list            # outcome of each A run
    b: list
    status: str


@dataclass
class FigureRow:
    scenario: str
    fault: str
    metric: str
    a: list            # each A run's value: seconds, NEVER, or None (VIP did not move)
    b: list
    shift: float | None = None                 # Hodges-Lehmann, B - A
    interval: tuple | None = None              # bootstrap, median(B) - median(A)
    p: float | None = None
    verdict: str = NOT_COMPARABLE
    reason: str = ""


@dataclass
class ABComparison:
    confidence: float
    min_effect_s: float
    n_a: int
    n_b: int
    outcomes: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def regressions(self) -> list:
        return ([r for r in self.outcomes if r.status == REGRESSION]
                + [r for r in self.figures if r.verdict == SLOWER])


# ---------------------------------------------------------------- loading

def load_runs(path: str | Path) -> list[dict]:
    """The documents of a results.json, a run directory, or a directory of run directories (by name)."""
    path = Path(path)
    if not path.is_dir():
        return [results.load(path)]
    if (path / "results.json").is_file():
        return [results.load(path / "results.json")]
    runs = sorted(p / "results.json" for p in path.iterdir() if (p / "results.json").is_file())
    if not runs:
        raise results.ResultsError(f"{path}: no results.json in it nor in its subdirectories")
    return [results.load(p) for p in runs]


# ---------------------------------------------------------------- comparing

def compare_sides(a_docs: list[dict], b_docs: list[dict], confidence: float = 0.95, min_effect_s: float = 0.5,
                  seed: int = 0) -> ABComparison:
    cmp = ABComparison(confidence, min_effect_s, len(a_docs), len(b_docs),
                       notes=notes(a_docs, b_docs, confidence))
    for test in _ordered(s["test"] for d in a_docs + b_docs for s in d["scenarios"]):
        a, b = _outcomes(a_docs, test), _outcomes(b_docs, test)
        cmp.outcomes.append(OutcomeRow(test, a, b, outcome_status(a, b)))
        fa, fb = _figures(a_docs, test), _figures(b_docs, test)
        for fault, metric in _ordered([*fa, *fb]):
            row = FigureRow(test, fault, metric, fa.get((fault, metric), []), fb.get((fault, metric), []))
            cmp.figures.append(judge(row, confidence, min_effect_s, seed))
    return cmp


def _ordered(items) -> list:
    return list(dict.fromkeys(items))


def _outcomes(docs: list[dict], test: str) -> list[str]:
    out = []
    for d in docs:
        s = next((s for s in d["scenarios"] if s["test"] == test), None)
        out.append(NOT_RUN if s is None else s["outcome"] or NOT_RECORDED)
    return out


def outcome_status(a: list[str], b: list[str]) -> str:
    a_bad, b_bad = any(o in BAD for o in a), any(o in BAD for o in b)
    if a_bad and b_bad:
        return BOTH_FAIL
    return REGRESSION if b_bad else FIXED if a_bad else SAME


def _figures(docs: list[dict], test: str) -> dict:
    """{(fault key, metric): [value of each run that has it]}."""
    out = {}
    for d in docs:
        for s in (s for s in d["scenarios"] if s["test"] == test):
            for key, result in fault_keys(s).items():
                for metric, value in metrics(result).items():
                    if metric != "verdict":          # the outcome rows judge pass/fail
                        out.setdefault((key, metric), []).append(value)
    return out


def numbers(values: list) -> list[float]:
    """What the statistics see: NEVER is inf, "did not move" (None) is left out."""
    return [math.inf if v == NEVER else float(v) for v in values if v is not None]


def judge(row: FigureRow, confidence: float, min_effect_s: float, seed: int = 0) -> FigureRow:
    a, b = numbers(row.a), numbers(row.b)
    if not row.a or not row.b:          # a side whose runs never reached the measurement
        row.reason = f"no figure on {'A' if not row.a else 'B'}"
        return row
    if not a and not b:
        row.verdict, row.reason = NO_DIFF, "did not move on either side"
        return row
    if not a or not b:
        row.reason = f"moved on {'B' if not a else 'A'} only"
        return row
    row.shift, row.p = abstats.hodges_lehmann(a, b), abstats.mann_whitney_p(a, b)
    row.interval = abstats.bootstrap_ci(a, b, confidence, seed=seed)
    never_a, never_b = a.count(math.inf), b.count(math.inf)
    if never_b and not never_a:
        row.verdict, row.reason = SLOWER, f"never recovers in {never_b} of {len(b)} B runs"
    elif never_a and not never_b:
        row.verdict, row.reason = FASTER, f"recovers in every B run, never in {never_a} of {len(a)} A runs"
    elif row.p < 1 - confidence and abs(row.shift) >= min_effect_s:
        row.verdict = SLOWER if row.shift > 0 else FASTER
    elif row.p < 1 - confidence:
        row.verdict, row.reason = NO_DIFF, f"significant, but the shift is under {min_effect_s:g} s"
    else:
        row.verdict = NO_DIFF
    return row


# ---------------------------------------------------------------- comparability notes

KINDS = {"topology": "topology differs", "image": "image tags differ", "package": "package versions differ",
         "probe interval": "probe intervals differ", "agent": "agent checksums differ"}


def facts(doc: dict) -> dict[str, dict]:
    """{kind: {key: value}} of one run: what should be the same on every run but the agents."""
    run = doc["run"]
    tags = [i["tag"] for i in (run.get("timings") or {}).get("images") or []]
    return {"topology": {"": run.get("topology")},
            "image": {t.rsplit(":", 1)[0]: t.rsplit(":", 1)[-1] for t in tags},
            "package": run.get("packages") or {},
            "probe interval": {short(s["test"]): s["probe_interval_s"] for s in doc["scenarios"]},
            "agent": {a["agent"]: a["sha256"] for a in run.get("resource_agents") or []}}


def _show(kind: str, value) -> str:
    if kind == "agent":
        return (value or "unknown")[:12]
    return f"{value:g} s" if kind == "probe interval" else str(value)


def _join(kind: str, values: list) -> str:
    return " / ".join(_show(kind, v) for v in values)


def _labelled(key: str, text: str) -> str:
    return f"{key}: {text}" if key else text


def notes(a_docs: list[dict], b_docs: list[dict], confidence: float) -> list[str]:
    fa, fb = [facts(d) for d in a_docs], [facts(d) for d in b_docs]
    out = [line for kind in KINDS for line in _kind_notes(kind, fa, fb)]
    need = abstats.min_runs_for(confidence)
    if min(len(a_docs), len(b_docs)) < need:
        out.append(f"warning: too few runs for {confidence:.0%} confidence: A {len(a_docs)}, B {len(b_docs)}; "
                   f"even fully separated sides need {need} runs each to reach p < {1 - confidence:.2g}")
    return out


def _distinct(side: list[dict], kind: str, key: str) -> list:
    return _ordered(v for f in side if (v := f[kind].get(key)) is not None)


def _kind_notes(kind: str, fa: list[dict], fb: list[dict]) -> list[str]:
    keys = _ordered(k for f in fa + fb for k in f[kind])
    stock = "stock " if kind == "agent" else ""
    between, within = [], {"A": [], "B": []}
    for key in keys:
        va, vb = _distinct(fa, kind, key), _distinct(fb, kind, key)
        for side, values in (("A", va), ("B", vb)):
            if len(values) > 1:
                within[side].append(_labelled(key, _join(kind, values)))
        if va and vb and set(va) != set(vb):
            between.append(_labelled(key, f"{stock}{_join(kind, va)} -> {_join(kind, vb)}"))
    out = [f"warning: {KINDS[kind]} between the runs of {side}: {', '.join(items)}"
           for side, items in within.items() if items]
    if kind != "agent":
        return out + ([f"warning: {KINDS[kind]} between A and B: {', '.join(between)}"] if between else [])
    # the agents are the one difference the comparison is about
    return out + ([f"agents differ (the patch): {', '.join(between)}"] if between
                  else ["note: the agents are the same on A and B"] if keys else [])


# ---------------------------------------------------------------- output

def spread(values: list) -> dict:
    """Median, min, max of the numbers (NEVER for inf), n, and how many did not move."""
    nums = numbers(values)
    back = lambda x: NEVER if x == math.inf else x
    stats = {"median": back(abstats.median(nums)), "min": back(min(nums)), "max": back(max(nums))} if nums else {}
    return {**stats, "n": len(nums), "did_not_move": values.count(None)}


def side_cell(values: list) -> str:
    s = spread(values)
    if not s["n"]:
        return f"did not move n={s['did_not_move']}" if s["did_not_move"] else "—"
    text = f"{fmt(s['median'])} [{_bare(s['min'])}–{_bare(s['max'])}] n={s['n']}"
    return text + (f" +{s['did_not_move']} did not move" if s["did_not_move"] else "")


def _bare(value) -> str:
    return value if value == NEVER else f"{value:.2f}"


def _signed(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:+.2f} s" if math.isfinite(x) else ("+inf" if x > 0 else "-inf")


def _cells(r: FigureRow) -> tuple:
    interval = f"[{_signed(r.interval[0])}, {_signed(r.interval[1])}]" if r.interval else "—"
    return (_signed(r.shift), interval, "—" if r.p is None else f"{r.p:.3g}",
            r.verdict + (f" ({r.reason})" if r.reason else ""))


def _counted(outcomes: list[str]) -> str:
    return ", ".join(f"{n} {o}" for o, n in Counter(outcomes).items())


FIGURE_HEAD = ("scenario", "fault", "metric", "A median [min–max]", "B median [min–max]", "shift B−A",
               "interval", "p", "verdict")


def text_table(cmp: ABComparison) -> str:
    figures = columns(FIGURE_HEAD, [(short(r.scenario), r.fault, r.metric, side_cell(r.a), side_cell(r.b),
                                     *_cells(r)) for r in cmp.figures])
    outcomes = columns(("scenario", "A", "B", "status"),
                       [(short(r.scenario), _counted(r.a), _counted(r.b), r.status) for r in cmp.outcomes])
    return f"{figures}\n\n{outcomes}"


def summary_line(cmp: ABComparison) -> str:
    figures = ", ".join(f"{n} {v}" for v, n in Counter(r.verdict for r in cmp.figures).items())
    scenarios = ", ".join(f"{n} {s}" for s, n in Counter(r.status for r in cmp.outcomes).items())
    return (f"{len(cmp.regressions())} regression(s), A {cmp.n_a} run(s) vs B {cmp.n_b} run(s), "
            f"{cmp.confidence:.0%} confidence, min effect {cmp.min_effect_s:g} s "
            f"(figures: {figures or 'none'}; scenarios: {scenarios or 'none'})")


def _finite(x):
    """JSON has no infinity: ±inf become the strings "inf" / "-inf"."""
    return x if not isinstance(x, float) or math.isfinite(x) else ("inf" if x > 0 else "-inf")


def to_json(cmp: ABComparison) -> dict:
    figures = [{**asdict(r), "shift": _finite(r.shift), "interval": r.interval and [_finite(x) for x in r.interval],
                "a_spread": spread(r.a), "b_spread": spread(r.b)} for r in cmp.figures]
    return {"confidence": cmp.confidence, "min_effect_s": cmp.min_effect_s, "runs": {"A": cmp.n_a, "B": cmp.n_b},
            "notes": cmp.notes, "summary": summary_line(cmp), "regressions": len(cmp.regressions()),
            "outcomes": [asdict(r) for r in cmp.outcomes], "figures": figures}


def write_json(cmp: ABComparison, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(to_json(cmp), indent=2) + "\n")
    return path


CLASS = {REGRESSION: "fail", SLOWER: "fail", FIXED: "pass", FASTER: "pass"}


def _values(values: list) -> str:
    return ", ".join(fmt(v) for v in values) or "—"


def html_page(cmp: ABComparison, a_name: str, b_name: str, extra_sections=()) -> str:
    outcomes = [[short(r.scenario), _badges(r.a), _badges(r.b), badge(r.status, CLASS.get(r.status, "other"))]
                for r in cmp.outcomes]
    figures = [[short(r.scenario), r.fault, r.metric, _values(r.a), side_cell(r.a), _values(r.b), side_cell(r.b),
                *_cells(r)[:3], badge(r.verdict, CLASS.get(r.verdict, "other")), r.reason] for r in cmp.figures]
    notes_html = "".join(f'<p class="warn">{esc(n)}</p>' for n in cmp.notes)
    body = (f"<h1>A/B comparison</h1><p>A <code>{esc(a_name)}</code> ({cmp.n_a} runs) → "
            f"B <code>{esc(b_name)}</code> ({cmp.n_b} runs)</p>{notes_html}<p><b>{esc(summary_line(cmp))}</b></p>"
            + "<h2>Scenarios</h2>" + table(["scenario", "A", "B", "status"], outcomes)
            + "<h2>Figures</h2>" + table(["scenario", "fault", "metric", "A values", "A median [min–max]", "B values",
                                          "B median [min–max]", "shift B−A", "interval", "p", "verdict", "why"],
                                         figures, numeric={4, 6, 7, 8, 9})
            + "".join(extra_sections) + f'<p class="muted">{esc(__doc__.strip())}</p>')
    return page(f"A/B {a_name} → {b_name}", body)


def _badges(outcomes: list[str]) -> Raw:
    return Raw(" ".join(outcome_badge(o) for o in outcomes))
