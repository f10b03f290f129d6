"""Timeline math of the checkers, on synthetic histories (pure logic)."""

import pytest

from harness import checkers
from harness.history import History


def samples(pattern: str, interval=0.25, start=0.0, probe="p", served="a"):
    """'++--+' -> samples every `interval`; '+' ok, '-' failed."""
    return [{"kind": "sample", "probe": probe, "t": start + i * interval, "ok": c == "+",
             "error": None if c == "+" else "Timeout", "detail": served if c == "+" else ""}
            for i, c in enumerate(pattern)]


def test_no_failure_is_zero_downtime():
    d = checkers.downtime(samples("++++"), 0.25)
    assert d.downtime_s == 0.0 and d.recovered and d.failures == 0


def test_downtime_first_failure_to_steady_success():
    d = checkers.downtime(samples("++----++++"), 0.25)
    assert d.first_failure == 0.5 and d.recovered_at == 1.5
    assert d.downtime_s == 1.0 and d.unavailable_s == 1.0
    assert d.error_rate == 0.4 and d.errors == {"Timeout": 4}


def test_flapping_counts_until_last_recovery():
    d = checkers.downtime(samples("+--+-++"), 0.25)
    assert d.first_failure == 0.25 and d.recovered_at == 1.25
    assert d.downtime_s == 1.0 and d.unavailable_s == 0.75


def test_never_recovered():
    d = checkers.downtime(samples("++---"), 0.25)
    assert not d.recovered and d.downtime_s is None
    v = checkers.verdict([d], 60)
    assert not v.passed and "never recovered" in v.reasons[0]


def test_window_and_served_by():
    s = samples("++", served="node1") + samples("--++", start=0.5, served="node2")
    d = checkers.downtime(s, 0.25, start=0.5)
    assert d.samples == 4 and d.downtime_s == 0.5
    assert checkers.downtime(s, 0.25).served_by == ["node1", "node2"]


def test_verdict_against_per_probe_target():
    d = checkers.downtime(samples("+" + "-" * 40 + "+"), 0.25)   # 10 s
    assert checkers.verdict([d], 120).passed
    v = checkers.verdict([d], {"p": 5, "default": 120})
    assert not v.passed and "down 10.0s > target 5s" in v.reasons[0]


def vip(t, holders):
    return {"kind": "vip", "vip": "public", "t": t, "holders": holders}


def test_vip_move_and_double_holder():
    ev = [vip(0, ["node1"]), vip(1, ["node1"]), vip(1.5, []), vip(2.0, []), vip(2.5, ["node2"])]
    mv = checkers.vip_move(ev, "public", since=1.2)
    assert mv.before == ["node1"] and mv.after == ["node2"] and mv.move_s == 1.3
    assert mv.gap_s == 1.0 and mv.max_holders == 1
    ev.append(vip(3.0, ["node1", "node2"]))
    assert checkers.vip_move(ev, "public", since=1.2).max_holders == 2


def test_recovery_stages_from_history(tmp_path):
    h = History("x")
    h.record("cluster", t=0.0, online=["n1", "n2"], placement={"vip": ["n1"]})
    h.record("cluster", t=2.0, online=["n2"], placement={"vip": []})
    h.record("cluster", t=3.0, online=["n2"], placement={"vip": ["n2"]})
    for e in samples("++---+++", start=0.0):
        h.record(**e)
    stages = checkers.recovery_stages(h, since=0.4, node="n1")
    names = [s["stage"] for s in stages]
    assert names == ["p first failure", "p answers again (steadily)", "n1 seen offline by the cluster",
                     "vip stopped", "vip active on n2"]
    assert [s["after_s"] for s in stages] == [0.1, 0.85, 1.6, 1.6, 2.6]
    # and the history survives a save/load round trip unchanged
    loaded = History.load(h.save(tmp_path / "h.jsonl"))
    assert loaded.events() == h.events()


def test_unexpected_fencing():
    from harness.checkers import unexpected_fencing
    kill2 = [(1.0, "fence device: kill node2 done")]
    nodes2, nodes3 = ["node1", "node2"], ["node1", "node2", "node3"]
    assert unexpected_fencing(kill2, set(), nodes2) == ["unexpected fencing: fence device: kill node2 done"]
    assert unexpected_fencing(kill2, {"node1"}, nodes2) == []            # 2 nodes: either may lose the race
    assert unexpected_fencing(kill2, {"node1"}, nodes3) == ["unexpected fencing: fence device: kill node2 done"]
    assert unexpected_fencing(kill2, {"node2"}, nodes3) == []
    assert unexpected_fencing([(2.0, "fence device: kill node12 done")], set(), ["node1", "node12"]) == [
        "unexpected fencing: fence device: kill node12 done"]


def _over_target(recovered_at=139.7, stages=None, reasons=None):
    """An analysis where cinder's API was down past the target (figures from os-ap-3node)."""
    starts = stages if stages is not None else [
        {"t": 24.0, "stage": "[node3] vip start on node3: ok"},
        {"t": 27.0, "stage": "[node3] mysql start on node3: ok"},
        {"t": 139.6, "stage": "[node3] cinder-api start on node3: ok"}]
    down = {"http:cinder": {"downtime_s": 136.0, "recovered_at": recovered_at},
            "http:keystone": {"downtime_s": 39.0, "recovered_at": 48.7}}
    return {"fault_start": 3.4, "downtime": down, "stages": starts,
            "verdict": {"passed": False, "target_s": 120.0,
                        "reasons": reasons or ["http:cinder: down 136.0s > target 120s"]},
            "host": {"cpus": 2, "busy_mean": 0.9, "saturated_s": 84}}


PRIMS = {"vip", "mysql", "keystone", "cinder-api"}


def test_an_api_that_answers_at_its_late_start_is_the_ordering():
    why = checkers.serial_start_explains(_over_target(), PRIMS)
    assert why.startswith("http:cinder answered +0.1 s from cinder-api's start on node3 at +136 s, "
                          "after 2 other starts there (vip first, mysql last)")
    assert "84 s saturated" in why


def test_an_api_slow_after_its_start_is_not_excused():
    assert checkers.serial_start_explains(_over_target(recovered_at=160.0), PRIMS) is None


def test_no_cluster_record_or_no_earlier_start_is_not_excused():
    assert checkers.serial_start_explains(_over_target(stages=[]), PRIMS) is None
    alone = [{"t": 139.6, "stage": "[node3] cinder-api start on node3: ok"}]
    assert checkers.serial_start_explains(_over_target(stages=alone), PRIMS) is None


def test_another_reason_is_not_excused():
    reasons = ["http:cinder: down 136.0s > target 120s", "http:nova: never recovered (9 failed samples up to the end)"]
    assert checkers.serial_start_explains(_over_target(reasons=reasons), PRIMS) is None


def test_the_api_resource_behind_a_probe():
    assert checkers.api_resource("os:keystone-login", PRIMS) == "keystone"
    assert checkers.api_resource("http:cinder", PRIMS) == "cinder-api"
    assert checkers.api_resource("http:web", PRIMS) is None


def _login_samples(late_error="Timeout"):
    """os:keystone-login on os-ap-3node's clean shutdown: down until keystone's start at +50.5,
    good from +52.6, two timeouts at +142.6/+143.6 while the last members started."""
    out = [{"t": t, "ok": False, "error": "Timeout", "duration": 2.0} for t in (45.6, 47.6, 49.6, 51.6)]
    out += [{"t": t + 0.6, "ok": True, "duration": 0.3} for t in range(52, 142)]
    out += [{"t": t, "ok": False, "error": late_error, "duration": 2.0} for t in (142.6, 143.6)]
    return out + [{"t": 144.6, "ok": True, "duration": 0.4}]


def _shutdown_over_target():
    r = _over_target(recovered_at=141.5, stages=[
        {"t": 20.4, "stage": "[node3] vip start on node3: ok"},
        {"t": 23.0, "stage": "[node3] mysql start on node3: ok"},
        {"t": 50.5, "stage": "[node3] keystone start on node3: ok"},
        {"t": 141.4, "stage": "[node3] cinder-api start on node3: ok"}],
        reasons=["http:cinder: down 138.0s > target 120s", "os:keystone-login: down 137.0s > target 120s"])
    r["downtime"]["os:keystone-login"] = {"downtime_s": 137.0, "recovered_at": 144.6}
    return r


HOT = [{"t": float(t), "busy": 1.0 if 138 <= t <= 146 else 0.6} for t in range(0, 150)]


def test_an_api_back_at_its_start_then_timing_out_on_a_saturated_host_is_the_ordering():
    r = _shutdown_over_target()
    assert checkers.serial_start_explains(r, PRIMS) is None          # no samples: not excused
    why = checkers.serial_start_explains(r, PRIMS, {"os:keystone-login": _login_samples()}, HOT)
    assert "os:keystone-login answered +2.1 s from keystone's start on node3 at +47 s" in why
    assert "then 2 timeout(s) at +92..+93 s from that start, each while the host was saturated" in why


def test_a_late_error_or_a_timeout_with_cpu_to_spare_is_not_excused():
    r = _shutdown_over_target()
    samples = {"os:keystone-login": _login_samples(late_error="HTTP 500")}
    assert checkers.serial_start_explains(r, PRIMS, samples, HOT) is None
    cool = [{"t": e["t"], "busy": 0.6} for e in HOT]
    assert checkers.serial_start_explains(r, PRIMS, {"os:keystone-login": _login_samples()}, cool) is None


def test_an_api_not_back_soon_after_its_start_is_not_excused_by_saturation():
    r = _shutdown_over_target()
    slow = [s for s in _login_samples() if not (s["ok"] and s["t"] < 70)]    # first good answer at +70
    assert checkers.serial_start_explains(r, PRIMS, {"os:keystone-login": slow}, HOT) is None


def _host(busy: float, n: int = 100, cpus: int = 2):
    return [{"t": float(i), "busy": busy, "cpus": cpus} for i in range(n)]


def test_below_capacity_needs_fewer_cores_and_saturation_throughout():
    why = checkers.below_capacity(_host(0.99), 4, "os-aa-3node")
    assert why.startswith("os-aa-3node needs 4 cores, this host has 2: the host's 2 cores were saturated 100 of 100 s")
    assert checkers.below_capacity(_host(0.99, cpus=4), 4, "os-aa-3node") is None     # enough cores
    assert checkers.below_capacity(_host(0.99), 0, "os-ap-3node") is None              # no need declared
    half = _host(0.99, 50) + [{"t": 50.0 + i, "busy": 0.5, "cpus": 2} for i in range(50)]
    assert checkers.below_capacity(half, 4, "os-aa-3node") is None                      # CPU to spare
    assert checkers.below_capacity([], 4, "os-aa-3node") is None                        # no evidence


def _host_by_t(busy_by_t, cpus=2):
    return [{"kind": "host", "t": float(t), "busy": b, "cpus": cpus} for t, b in busy_by_t]


def test_a_monitor_timeout_whose_whole_timeout_ran_saturated_is_the_hosts():
    t0 = 1_000.0
    host = _host_by_t([(t, 1.0) for t in range(100, 131)])
    why = checkers.starved_timeout("Resource agent did not complete within 20s", t0 + 130, host, t0)
    assert why and "20 s" in why and "2 cores" in why


def test_one_unsaturated_second_in_the_timeout_keeps_the_failure_the_clusters():
    t0 = 1_000.0
    host = _host_by_t([(t, 0.5 if t == 120 else 1.0) for t in range(100, 131)])
    assert checkers.starved_timeout("Resource agent did not complete within 20s", t0 + 130, host, t0) is None


def test_a_timeout_without_host_samples_or_another_failure_is_not_excused():
    t0 = 1_000.0
    assert checkers.starved_timeout("Resource agent did not complete within 20s", t0 + 130, [], t0) is None
    host = _host_by_t([(t, 1.0) for t in range(100, 131)])
    assert checkers.starved_timeout("not running", t0 + 130, host, t0) is None
    assert checkers.starved_timeout("Resource agent did not complete within 20s", None, host, t0) is None


def _stages(*pairs):
    return [{"kind": "clusterlog", "t": t, "stage": s} for t, s in pairs]


@pytest.mark.parametrize("lost, asked, done", [(50.7, 55.3, 67.9), (66.6, 69.2, 77.1)])
def test_the_clusters_own_fencing_during_a_slow_requested_reboot_is_an_overlap(lost, asked, done):
    # node1's journal of both runs on TCG VMs (2026-12-02, history times): node2 lost, the
    # controller's own `off` requested, the operator's reboot done, then the second power-off
    stages = _stages((11.6, "fencing done: node3 (reboot) by node1"), (lost, "pacemaker: node2 lost"),
                     (asked, "fencing requested: off node2"), (done, "fencing done: node2 (reboot) by node1"),
                     (done + 35, "fencing done: node2 (off) by node1"))
    why = checkers.fencing_overlap(stages, "node2")
    assert why and f"{lost}" in why and f"{asked}" in why and f"{done}" in why


def test_a_fencing_requested_after_the_reboot_completed_is_no_overlap():
    # the reboot finished before the node was lost: a later fencing is a loop, not an overlap
    stages = _stages((5.0, "fencing done: node2 (reboot) by node1"), (7.0, "pacemaker: node2 lost"),
                     (60.0, "fencing requested: off node2"))
    assert checkers.fencing_overlap(stages, "node2") is None
    # lost during the reboot, but the cluster asked only after it completed
    stages = _stages((3.0, "pacemaker: node2 lost"), (5.0, "fencing done: node2 (reboot) by node1"),
                     (60.0, "fencing requested: off node2"))
    assert checkers.fencing_overlap(stages, "node2") is None
    assert checkers.fencing_overlap([], "node2") is None
