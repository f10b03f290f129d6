"""Checkers: judge a recorded history after the fact (Jepsen-style).

Nothing here talks to the cluster; every figure is recomputed from samples.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

DEFAULT_TARGET_S = 120.0


@dataclass
class Downtime:
    probe: str
    samples: int
    failures: int
    interval_s: float | None        # the probe's stated interval: the resolution of the figures
    first_failure: float | None     # t of the first failed sample (in the window)
    recovered_at: float | None      # t of the first good sample after the last failure
    downtime_s: float | None        # recovered_at - first_failure; None if never recovered
    unavailable_s: float            # sum of time covered by failed samples
    error_rate: float
    errors: dict = field(default_factory=dict)     # error class -> count
    served_by: list = field(default_factory=list)  # distinct `detail`s of good samples, in order

    @property
    def recovered(self) -> bool:
        return self.failures == 0 or self.recovered_at is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "recovered": self.recovered}


def downtime(samples: list[dict], interval: float | None = None, start: float | None = None,
             end: float | None = None) -> Downtime:
    """Downtime of one probe: first failure -> first success that is followed only by successes.

    Samples are sorted by start time `t`; `start`/`end` restrict the window.
    """
    window = [s for s in sorted(samples, key=lambda s: s["t"])
              if (start is None or s["t"] >= start) and (end is None or s["t"] <= end)]
    name = window[0]["probe"] if window else "?"
    fails = [i for i, s in enumerate(window) if not s["ok"]]
    errors: dict = {}
    for i in fails:
        errors[window[i]["error"] or "?"] = errors.get(window[i]["error"] or "?", 0) + 1
    served = []
    for s in window:
        if s["ok"] and s.get("detail") and (not served or served[-1] != s["detail"]):
            served.append(s["detail"])
    first_failure = window[fails[0]]["t"] if fails else None
    recovered_at = None
    if fails and fails[-1] + 1 < len(window):
        recovered_at = window[fails[-1] + 1]["t"]
    unavailable = 0.0
    for i in fails:
        nxt = window[i + 1]["t"] if i + 1 < len(window) else window[i]["t"] + (interval or 0)
        unavailable += nxt - window[i]["t"]
    return Downtime(
        probe=name, samples=len(window), failures=len(fails), interval_s=interval,
        first_failure=first_failure, recovered_at=recovered_at,
        downtime_s=round(recovered_at - first_failure, 3) if recovered_at is not None and fails else (0.0 if not fails else None),
        unavailable_s=round(unavailable, 3), error_rate=round(len(fails) / len(window), 4) if window else 0.0,
        errors=errors, served_by=served)


@dataclass
class VipMove:
    vip: str
    before: list
    after: list | None
    moved_at: float | None          # first sample showing the new single holder
    move_s: float | None            # moved_at - reference (fault start)
    max_holders: int                # >1 means the VIP was up on several nodes at once
    gap_s: float                    # time with no holder at all


def vip_move(events: list[dict], vip: str, since: float) -> VipMove:
    evs = [e for e in events if e["kind"] == "vip" and e["vip"] == vip]
    before = [e for e in evs if e["t"] < since]
    holders_before = before[-1]["holders"] if before else []
    after = [e for e in evs if e["t"] >= since]
    moved = next((e for e in after if len(e["holders"]) == 1 and e["holders"] != holders_before), None)
    gap = 0.0
    for a, b in zip(after, after[1:]):
        if not a["holders"]:
            gap += b["t"] - a["t"]
    return VipMove(vip, holders_before, moved["holders"] if moved else (after[-1]["holders"] if after else None),
                   moved["t"] if moved else None, round(moved["t"] - since, 3) if moved else None,
                   max((len(e["holders"]) for e in after), default=0), round(gap, 3))


def recovery_stages(history, since: float, node: str | None = None) -> list[dict]:
    """Where the time went: cluster-level milestones and the probes' first good answers,
    each as seconds after `since` (the fault start)."""
    stages = []

    def add(t, what):
        stages.append({"t": t, "after_s": round(t - since, 3), "stage": what})

    clusters = [e for e in history.events("cluster") if e["t"] >= since and "online" in e]
    if node:
        lost = next((e for e in clusters if node not in e["online"]), None)
        if lost:
            add(lost["t"], f"{node} seen offline by the cluster")
    before = [e for e in history.events("cluster") if e["t"] < since and "placement" in e]
    placed = dict(before[-1]["placement"]) if before else {}
    for e in clusters:
        for rid, nodes in e["placement"].items():
            if nodes != placed.get(rid):
                if nodes:
                    add(e["t"], f"{rid} active on {','.join(nodes)}")
                else:
                    add(e["t"], f"{rid} stopped")
                placed[rid] = nodes
    # the cluster's own record (journal lines, microseconds), where it was read
    for e in history.events("clusterlog"):
        if e["t"] >= since:
            add(e["t"], f"[{e['node']}] {e['stage']}")
    for vip in {e["vip"] for e in history.events("vip")}:
        mv = vip_move(history.events("vip"), vip, since)
        if mv.moved_at is not None:
            add(mv.moved_at, f"VIP {vip} up on {','.join(mv.after)}")
    for probe in history.probes():
        d = downtime(history.samples(probe), start=since)
        if d.first_failure is not None:
            add(d.first_failure, f"{probe} first failure")
        if d.recovered_at is not None:
            add(d.recovered_at, f"{probe} answers again (steadily)")
    return sorted(stages, key=lambda s: s["t"])


@dataclass
class Verdict:
    passed: bool
    target_s: float
    worst_probe: str | None
    worst_s: float | None
    reasons: list = field(default_factory=list)


def verdict(downtimes: list[Downtime], target_s: float | dict = DEFAULT_TARGET_S) -> Verdict:
    """Pass when every probe recovered within its target (a float, or {probe: seconds, "default": s})."""
    def target_for(probe):
        if isinstance(target_s, dict):
            return target_s.get(probe, target_s.get("default", DEFAULT_TARGET_S))
        return target_s
    reasons, worst = [], (None, None)
    for d in downtimes:
        if not d.recovered:
            reasons.append(f"{d.probe}: never recovered ({d.failures} failed samples up to the end)")
            continue
        if d.downtime_s and (worst[1] is None or d.downtime_s > worst[1]):
            worst = (d.probe, d.downtime_s)
        if d.downtime_s is not None and d.downtime_s > target_for(d.probe):
            reasons.append(f"{d.probe}: down {d.downtime_s:.1f}s > target {target_for(d.probe):.0f}s")
    default = target_s if not isinstance(target_s, dict) else target_s.get("default", DEFAULT_TARGET_S)
    return Verdict(not reasons, default, worst[0], worst[1], reasons)


SATURATED = 0.95          # host CPU busy share from which a client timeout may be the host's


def ran_saturated(sample: dict, host_events: list[dict]) -> bool:
    """A host sample of busy >= SATURATED taken during the attempt or within a second after it."""
    end = sample["t"] + (sample.get("duration") or 0.0) + 1.0
    return any(e.get("busy") is not None and e["busy"] >= SATURATED and sample["t"] <= e["t"] <= end
               for e in host_events)


def host_load(host_events: list[dict], failed: list[dict], start: float, end: float | None = None) -> dict | None:
    """The host's CPU over [start, end] and how many failed client samples ran while it was
    saturated (a host sample of busy >= SATURATED taken during the attempt or within a
    second after it). Evidence for a report, never a verdict: None without host samples."""
    window = [e for e in host_events if e["t"] >= start and (end is None or e["t"] <= end)
              and e.get("busy") is not None]
    if not window:
        return None
    busy = [e["busy"] for e in window]
    saturated = [s for s in failed if ran_saturated(s, window)]
    return {"busy_max": max(busy), "busy_mean": round(sum(busy) / len(busy), 3),
            "load1_max": max(e.get("load1") or 0.0 for e in window), "cpus": window[-1].get("cpus"),
            "saturated_s": sum(1 for b in busy if b >= SATURATED),
            "failed_samples": len(failed), "failed_while_saturated": len(saturated)}


def saturated_throughout(host_events: list[dict], share: float) -> str | None:
    """When at least `share` of the host samples were saturated (busy >= SATURATED): the
    evidence as one line; else None (also without host samples)."""
    busy = [e["busy"] for e in host_events if e.get("busy") is not None]
    hot = sum(1 for b in busy if b >= SATURATED)
    if not busy or hot < share * len(busy):
        return None
    return (f"the host's {host_events[-1].get('cpus')} cores were saturated {hot} of {len(busy)} s "
            f"(busy mean {sum(busy) / len(busy):.0%})")


CAPACITY_SHARE = 0.9      # of a scenario's host samples saturated: the host could not judge it


def below_capacity(host_events: list[dict], min_cpus: int, topology: str) -> str | None:
    """When the host has fewer cores than the topology needs (`host.min_cpus`) and was
    saturated for >= CAPACITY_SHARE of the scenario: the evidence as one line, else None.
    Measured on 2 cores: os-aa-3node's node rejoin ran 361 of 372 s saturated (load 16); its
    clients timed out throughout whatever the cluster did."""
    cpus = next((e.get("cpus") for e in reversed(host_events) if e.get("cpus")), None)
    if not min_cpus or cpus is None or cpus >= min_cpus:
        return None
    hot = saturated_throughout(host_events, CAPACITY_SHARE)
    return hot and f"{topology} needs {min_cpus} cores, this host has {cpus}: {hot}"


_OP_TIMEOUT = re.compile(r"did not complete within (\d+)s")


def starved_timeout(exitreason: str, when_wall: float | None, host_events: list[dict], t0_wall: float) -> str | None:
    """When an operation timed out ("did not complete within Ns") while every host sample of
    its N seconds was saturated: the evidence as one line, else None (pure). On emulated CPUs
    (TCG) a VM booting beside the cluster starves the other for minutes: seen, IPaddr2's 20 s
    monitor timed out on the survivor while the shut-down node booted at 100 % busy (2026-12-02)."""
    m = _OP_TIMEOUT.search(exitreason or "")
    if not m or when_wall is None:
        return None
    end = when_wall - t0_wall
    start = end - int(m.group(1))
    busy = [e["busy"] for e in host_events if e.get("busy") is not None and start <= e["t"] <= end]
    # a sample per second is expected: a window mostly without samples judges nothing
    if len(busy) < 0.8 * (end - start) or min(busy) < SATURATED:
        return None
    return (f"timed out after {m.group(1)} s while the host's {host_events[-1].get('cpus')} cores were "
            f"saturated throughout them ({len(busy)} samples, busy min {min(busy):.0%})")


TIMEOUTS = ("Timeout", "TimeoutError", "ReadTimeout", "ReadTimeoutError", "ConnectTimeout", "timeout")


def only_saturation_timeouts(result: dict) -> str | None:
    """When every failed client sample of an analysis was a timeout taken while the host's CPU
    was saturated, the evidence as one line; else None. A scenario that expects no failure at
    all (a passive node lost) cannot judge on such a host: the clients timed out because the
    nodes share the host's cores, which separate machines do not."""
    host = result.get("host")
    failed = {p: d for p, d in result["downtime"].items() if d["failures"]}
    if not failed or not host or host["failed_while_saturated"] < host["failed_samples"]:
        return None
    if any(err not in TIMEOUTS for d in failed.values() for err in d["errors"]):
        return None
    who = ", ".join(f"{p} {d['failures']}" for p, d in failed.items())
    return (f"every failed client sample ({who}) was a timeout while the host's {host['cpus']} cores were "
            f"saturated (busy max {host['busy_max']:.0%}, {host['saturated_s']} s at >= 95%)")


# "[node3] cinder-api start on node3: ok": a clusterlog milestone in an analysis's stages
_START_OK = re.compile(r"^\[\S+\] (?P<rid>\S+) start on (?P<node>\S+): ok$")
SERIAL_SLACK_S = 10.0     # an API that answers this soon after its start was not the slow part


def api_resource(probe: str, primitives) -> str | None:
    """The resource behind a client probe ("http:nova", "os:keystone-login"): the API's
    own name or "<api>-api", whichever the topology defines."""
    api = probe.split(":", 1)[-1].removesuffix("-login")
    return next((r for r in (api, f"{api}-api") if r in primitives), None)


def serial_start_explains(result: dict, primitives, samples: dict | None = None,
                          host_events: list | None = None) -> str | None:
    """When every probe over the target answered within SERIAL_SLACK_S of Pacemaker's start of
    its resource on the new node, after other resources had been started there one by one: the
    evidence as one line, else None. The time then went to the layout's ordering (an ordered
    group starts its members one after another; a clean hand-over first stops them the same
    way), not to the API; on a small host each start is slow. A probe that answered at its
    start and failed again later is explained only when `samples` (its own, from the history)
    show each later failure to be a timeout in a second the host was saturated (`host_events`):
    seen on os-ap-3node's clean shutdown, two password logins timed out 90 s after keystone
    was back, while the group's last members started on a 100 % busy host. A probe that never
    recovered, an API slow after its start, or a missing cluster record: None (it fails)."""
    v, start = result["verdict"], result["fault_start"]
    over = {p: d for p, d in result["downtime"].items()
            if d["downtime_s"] is not None and d["downtime_s"] > v["target_s"]}
    if v["passed"] or not over or len(over) != len(v["reasons"]):
        return None
    starts = [(s["t"], m["rid"], m["node"]) for s in result.get("stages", [])
              if s["t"] >= start and (m := _START_OK.match(s["stage"]))]
    why = []
    for probe, d in over.items():
        rid = api_resource(probe, primitives)
        own = [(t, node) for t, r, node in starts if r == rid and t <= d["recovered_at"] + SERIAL_SLACK_S]
        if not own:
            return None
        t, node = own[-1]
        before = [r for tt, r, n in starts if n == node and tt < t and r != rid]
        if not before:
            return None
        back = d["recovered_at"]
        later = ""
        if abs(back - t) > SERIAL_SLACK_S:
            found = _back_at_start_then_saturated(samples.get(probe, []) if samples else [],
                                                  host_events or [], t, d["recovered_at"])
            if found is None:
                return None
            back, later = found
        why.append(f"{probe} answered {back - t:+.1f} s from {rid}'s start on {node} at "
                   f"+{t - start:.0f} s, after {len(before)} other starts there ({before[0]} first, "
                   f"{before[-1]} last){later}")
    host = result.get("host")
    load = (f"; host {host['cpus']} cores, busy mean {host['busy_mean']:.0%}, {host['saturated_s']} s saturated"
            if host else "")
    return "; ".join(why) + load


def _back_at_start_then_saturated(samples: list[dict], host_events: list[dict], started: float,
                                  recovered_at: float) -> tuple[float, str] | None:
    """(first good answer, evidence) when the probe answered within SERIAL_SLACK_S of its
    resource's start and every failure after that, up to its recovery, was a timeout in a
    saturated host second; else None."""
    window = [s for s in samples if started <= s["t"] < recovered_at]
    first_good = next((s["t"] for s in window if s.get("ok")), None)
    if first_good is None or first_good - started > SERIAL_SLACK_S:
        return None
    late = [s for s in window if s["t"] > first_good and not s.get("ok")]
    if any(s.get("error") not in TIMEOUTS or not ran_saturated(s, host_events) for s in late):
        return None
    return first_good, (f", then {len(late)} timeout(s) at +{late[0]['t'] - started:.0f}..+"
                        f"{late[-1]['t'] - started:.0f} s from that start, each while the host was saturated")


def unexpected_fencing(events: list[tuple[float, str]], lost: set[str], nodes: list[str]) -> list[str]:
    """Fence device actions a scenario did not call for (pure). A scenario that took no node
    away must cause no fencing; on 2 nodes either may lose the fence race once one is lost;
    on more, only the nodes the faults took may be fenced."""
    allowed = set() if not lost else set(nodes) if len(nodes) <= 2 else set(lost)
    out = []
    for _, what in events:
        target = next((n for n in nodes if f" {n} " in f" {what} "), None)
        if target is not None and target not in allowed:
            out.append(f"unexpected fencing: {what}")
    return out


def fencing_overlap(stages: list[dict], victim: str) -> str | None:
    """When the cluster asked for its own fencing of `victim` after losing it while an
    operator's fencing of it was still in flight: the evidence as one line, else None (pure,
    over `clusterlog` events). The controller does not know of a stonith_admin request: a
    reboot that outlasts the membership loss (token + consensus) and the scheduler's run
    makes it fence the node a second time, an `off` after the reboot (seen on TCG VMs, where
    the agent's reboot took 52 s)."""
    ordered = sorted(stages, key=lambda e: e["t"])

    def first(match):
        return next((e["t"] for e in ordered if match(e["stage"])), None)
    lost = first(lambda s: s == f"pacemaker: {victim} lost")
    done = first(lambda s: s.startswith(f"fencing done: {victim} (reboot)"))
    asked = first(lambda s: s.startswith("fencing requested: ") and s.endswith(f" {victim}"))
    if None in (lost, done, asked) or not lost < done or not lost <= asked < done:
        return None
    return (f"{victim} lost at {lost:.1f} s while the requested reboot ran; the cluster asked for its own "
            f"fencing at {asked:.1f} s, the reboot completed at {done:.1f} s")
