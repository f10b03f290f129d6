"""Recompute a fault's figures from its history, to prove the report shows only
numbers the history supports.

`Scenario.analyse()` runs while the probes still record, and does not store the end
of its analysis window, so the saved history holds events it never saw. Both are
inferred here: probes append a sample when it completes (`t` + `duration`), so the
recorded sample counts pin down when the analysis ran. The window that reproduces
the recorded figures is stored in results.json; none reproducing them is a finding
the report shows.
"""
from __future__ import annotations

from ..history import History
from .. import checkers

DOWNTIME_KEYS = ("samples", "failures", "first_failure", "recovered_at", "downtime_s",
                 "unavailable_s", "error_rate", "errors", "served_by", "recovered")
VIP_KEYS = ("before", "after", "moved_at", "move_s", "max_holders", "gap_s")
EPS = 1e-4


def completed(event: dict) -> float:
    return event["t"] + (event.get("duration") or 0.0)


def as_of(history: History, until: float | None) -> History:
    """The history as it stood at history time `until` (None: all of it)."""
    if until is None:
        return history
    view = History(history.name, history.meta)
    view.t0_wall = history.t0_wall
    for e in history.events():
        if completed(e) <= until:
            view.record(e["kind"], t=e["t"], **{k: v for k, v in e.items() if k not in ("kind", "t", "wall")})
    return view


def downtimes(history: History, result: dict, end: float | None) -> dict:
    since, interval = result["fault_start"], result.get("probe_interval_s")
    return {p: checkers.downtime(history.samples(p), interval, start=since, end=end).to_dict()
            for p in result["downtime"]}


def full_recovery(downs: dict, since: float) -> float | None:
    recovered = [d["recovered_at"] for d in downs.values() if d["recovered_at"] is not None]
    return round(max(recovered) - since, 3) if recovered else None


def _diff(what: str, recorded: dict, computed: dict, keys) -> list[str]:
    return [f"{what} {k}: recorded {recorded.get(k)!r}, history gives {computed.get(k)!r}"
            for k in keys if recorded.get(k) != computed.get(k)]


def nodes_seen(history: History) -> list[str]:
    names = {n for e in history.events("cluster") for n in e.get("online", [])}
    return sorted(names | {n for e in history.events("vip") for n in e["holders"]})


def _stage_mismatches(history: History, result: dict) -> list[str]:
    # analyse() names the node to watch (not recorded: usually the fault's target) or none.
    since = result["fault_start"]
    for node in (result.get("target"), None, *nodes_seen(history)):
        if checkers.recovery_stages(history, since, node) == result.get("stages", []):
            return []
    return ["recovery stages: the history gives a different list"]


def _verdict_mismatches(result: dict, downs: dict) -> list[str]:
    objs = [checkers.Downtime(**{k: v for k, v in d.items() if k != "recovered"}) for d in downs.values()]
    passed = checkers.verdict(objs, result["verdict"]["target_s"]).passed
    if passed != result["verdict"]["passed"]:
        return [f"verdict: recorded passed={result['verdict']['passed']}, history gives {passed} "
                f"against the default target (per-probe targets are not recorded)"]
    return []


def mismatches_in(history: History, result: dict, end: float | None, until: float | None) -> list[str]:
    """Every recorded figure of one fault the history does not reproduce in this window."""
    seen = as_of(history, until)
    downs = downtimes(seen, result, end)
    out = []
    for probe, computed in downs.items():
        out += _diff(f"{probe}:", result["downtime"][probe], computed, DOWNTIME_KEYS)
    full = full_recovery(downs, result["fault_start"])
    if full != result.get("full_recovery_s"):
        out.append(f"full recovery: recorded {result.get('full_recovery_s')!r}, history gives {full!r}")
    for vip, recorded in result.get("vip", {}).items():
        computed = vars(checkers.vip_move(seen.events("vip"), vip, result["fault_start"]))
        out += _diff(f"VIP {vip}:", recorded, computed, VIP_KEYS)
    return out + _stage_mismatches(seen, result) + _verdict_mismatches(result, downs)


def _until_bounds(history: History, result: dict, end: float | None) -> tuple[float, float] | None:
    """[lo, hi): the times at which exactly the recorded number of samples per probe
    had completed. Completed counts only grow, so this is one interval (or none)."""
    lo, hi = float("-inf"), float("inf")
    for probe, recorded in result["downtime"].items():
        done = sorted(completed(s) for s in history.samples(probe)
                      if s["t"] >= result["fault_start"] and (end is None or s["t"] <= end))
        n = recorded["samples"]
        if n > len(done):
            return None
        lo = max(lo, done[n - 1] if n else lo)
        hi = min(hi, done[n] if n < len(done) else hi)
    return (lo, hi) if lo < hi else None


def candidate_windows(history: History, result: dict):
    """(end, until) pairs, most likely first."""
    if "analysed_at" in result:         # if analyse() ever records it, no guessing
        yield result.get("analysis_end"), result["analysed_at"]
        return
    for end in (None, result.get("fault_end")):
        bounds = _until_bounds(history, result, end)
        if bounds:
            lo, hi = bounds
            yield end, round(lo, 4)
            if hi != float("inf"):
                yield end, round(hi - EPS, 4)
        yield end, None


def infer_window(history: History, result: dict) -> dict:
    """{"start", "end", "until", "reproduced"}: the window that reproduces the figures."""
    first = None
    for end, until in candidate_windows(history, result):
        first = first or (end, until)
        if not mismatches_in(history, result, end, until):
            return {"start": result["fault_start"], "end": end, "until": until, "reproduced": True}
    end, until = first if first else (None, None)
    return {"start": result["fault_start"], "end": end, "until": until, "reproduced": False}


def mismatches(history: History, result: dict) -> list[str]:
    """Mismatches within the result's stored window (inferred when it has none)."""
    w = result.get("window") or infer_window(history, result)
    return mismatches_in(history, result, w["end"], w.get("until"))
