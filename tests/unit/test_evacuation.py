"""The evacuation checker on a recorded history (no cluster): a node1 loss at t=100 with
four instances on it: one evacuated cleanly, one stuck in ERROR, one left on the dead host,
one evacuated and then found running on node1 again when it came back."""
import pytest

from harness import evacuation as ev
from harness.history import History

FAULT = 100.0


def history():
    h = History("evac")
    rec = ev.Recorder(h)
    for iid in ("a", "b", "c", "d"):
        rec.server(iid, f"vm-{iid}", "ACTIVE", "node1", None, None, t=90)
    rec.server("e", "vm-e", "ACTIVE", "node2", None, None, t=90)     # elsewhere: not tracked
    rec.stage("node lost", host="node1", t=102)
    rec.stage("fenced", host="node1", t=110)
    rec.stage("service forced down", host="node1", t=111)
    for iid in ("a", "b", "d"):
        rec.stage("evacuate called", host="node1", id=iid, t=112)
    # a: host, then ACTIVE, then migration done (Nova's order): the clock stops at 120
    rec.server("a", "vm-a", "REBUILD", "node2", "rebuild_spawning", "running", t=115)
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "running", t=118)
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "done", t=120)
    # b: failed on the destination
    rec.server("b", "vm-b", "ERROR", "node2", None, "error", t=116)
    # c: nobody evacuated it
    rec.server("c", "vm-c", "ACTIVE", "node1", None, None, t=200)
    # d: evacuated, then node1 came back still running it
    rec.server("d", "vm-d", "ACTIVE", "node2", None, "done", t=125)
    rec.hosted("node1", ["d"], t=300)
    rec.hosted("node2", ["a", "b", "d", "e"], t=300)
    return h


def test_only_instances_on_the_lost_node_when_the_fault_began_are_tracked():
    v = ev.check(history(), "node1", FAULT, 120)
    assert [i.name for i in v.instances] == ["vm-a", "vm-b", "vm-c", "vm-d"]


def test_the_clock_stops_only_when_active_moved_and_migration_done_all_hold():
    a = ev.check(history(), "node1", FAULT, 120).instances[0]
    assert a.recovered_s == 20.0 and a.new_host == "node2"
    # ACTIVE on node2 at 118 was not enough: the migration was still running
    assert a.stages["active elsewhere"] == 18.0 and a.stages["migration done"] == 20.0


def test_a_stuck_instance_is_lost_with_the_state_it_is_stuck_in():
    v = ev.check(history(), "node1", FAULT, 120)
    b, c = v.instances[1], v.instances[2]
    assert b.recovered_s is None and b.state == "ERROR on node2, migration error"
    assert c.recovered_s is None and c.state == "ACTIVE still on the dead host, no evacuation migration"
    assert {i.name for i in v.lost} == {"vm-b", "vm-c"}
    assert not v.passed


def test_a_duplicate_after_the_node_returns_is_reported():
    v = ev.check(history(), "node1", FAULT, 120)
    assert [(i.name, i.duplicate_on) for i in v.duplicated] == [("vm-d", "node1")]
    assert "vm-d (d) runs on node1 as well as on node2" in "\n".join(v.problems())


def test_figures_line_and_dominant_stage():
    v = ev.check(history(), "node1", FAULT, 120)
    assert v.times == [20.0, 25.0] and v.max_s == 25.0 and v.median_s == 22.5
    # node lost -> fenced is 8 s on every instance: the longest median span
    assert v.dominant_stage() == ("fenced", 8.0)
    line = v.line()
    assert line.startswith("4 instances on node1: recovered 2, max 25.0 s, median 22.5 s, lost 2 "
                           "(not recovered within the 120 s target)")
    assert "duplicated 1" in line


def test_dominant_stage_is_the_median_longest_span():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
    rec.stage("node lost", host="node1", t=12)
    rec.stage("evacuate called", host="node1", id="a", t=200)
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "done", t=203)
    v = ev.check(h, "node1", 10, 300)
    # node lost 2 s after the fault, then 188 s until the evacuate call: Masakari's wait
    assert v.dominant_stage() == ("evacuate called", 188.0)
    assert v.passed and v.instances[0].recovered_s == 193.0


def test_late_recovery_counts_as_lost_against_the_target():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "done", t=250)
    v = ev.check(h, "node1", 10, 120)
    assert v.instances[0].recovered_s == 240.0 and len(v.lost) == 1
    assert "after the 120 s target" in v.problems()[0]


def test_no_instance_on_the_node_is_not_a_pass():
    h = History("x")
    ev.Recorder(h).server("a", "vm-a", "ACTIVE", "node2", None, None, t=0)
    v = ev.check(h, "node1", 10, 120)
    assert not v.passed and v.line() == "no instance was on node1 when the fault began"


def test_stay_put_names_instances_that_left_a_live_node():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
    rec.server("b", "vm-b", "ACTIVE", "node1", None, None, t=0)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=30)
    rec.server("b", "vm-b", "REBUILD", "node2", None, "running", t=30)
    assert ev.stay_put(h, "node1", 10) == ["vm-b: node1 -> node2"]


def test_unknown_stage_names_are_refused():
    with pytest.raises(ValueError, match="unknown evacuation stage 'fencd'"):
        ev.Recorder(History("x")).stage("fencd")


def test_bars_are_in_time_order_and_the_verdict_serialises():
    v = ev.check(history(), "node1", FAULT, 120)
    name, stages = ev.bars(v)[0]
    assert name == "vm-a"
    assert [s for s, _ in stages] == ["node lost", "fenced", "service forced down", "evacuate called",
                                      "host changed", "active elsewhere", "migration done"]
    d = v.to_dict()
    assert d["lost"] == 2 and d["duplicated"] == 1 and len(d["instances"]) == 4


def test_node_lost_and_fenced_come_from_the_cluster_sampler_and_the_journal():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
    h.record("cluster", t=11, online=["node1", "node2"], placement={})
    h.record("cluster", t=13.5, online=["node2"], placement={})
    h.record("clusterlog", t=20, node="node2", source="pacemaker-fenced", stage="fencing done: node1 (reboot) by node2")
    h.record("clusterlog", t=21, node="node2", source="pacemaker-fenced", stage="fencing done: node3 (reboot) by node2")
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "done", t=60)
    inst = ev.check(h, "node1", 10, 120).instances[0]
    assert inst.stages["node lost"] == 3.5 and inst.stages["fenced"] == 10.0


def test_a_completed_migration_counts_and_marks_the_source_cleaned_up():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
    rec.server("a", "vm-a", "ACTIVE", "node2", None, "completed", t=40)
    inst = ev.check(h, "node1", 10, 120).instances[0]
    assert inst.recovered_s == 30.0 and inst.stages["source cleaned up"] == 30.0


def test_the_report_draws_a_bar_per_instance_and_lists_the_problems():
    from harness.report import evacchart
    v = ev.check(history(), "node1", FAULT, 120)
    d = v.to_dict()
    assert evacchart.segments(d["instances"][0]["stages"])[:2] == [(0.0, 2.0, "node lost"), (2.0, 8.0, "fenced")]
    html = evacchart.section(d)
    assert html.count("<tr>") >= 5 and "not recovered" in html and "vm-d (d) runs on node1" in html
    assert b"<svg" in evacchart.svg(d)


def test_shared_host_outcome_lists_what_nova_shows_after_the_loss():
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "harness-compute", None, None, t=0, power_state=1)
    rec.server("a", "vm-a", "ACTIVE", "harness-compute", None, None, t=20, power_state=1)
    rec.server("a", "vm-a", "SHUTOFF", "harness-compute", None, None, t=70, power_state=4)
    rows = ev.shared_host_outcome(h, "harness-compute", 10)
    assert rows == [{"id": "a", "name": "vm-a", "status": "SHUTOFF", "host": "harness-compute",
                     "power_state": "SHUTDOWN", "rewritten": False,
                     "changes": [{"after_s": 60.0, "status": "SHUTOFF", "power_state": "SHUTDOWN"}]}]


def test_a_record_nova_never_wrote_again_after_the_loss_is_not_rewritten():
    # seen on os-ap-2node: the instances died with their node and Nova went on showing
    # ACTIVE/RUNNING from its record of before the fault, for all of the 120 s watched
    from datetime import datetime, timezone

    def iso(t):
        return datetime.fromtimestamp(h.wall(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    h = History("x")
    rec = ev.Recorder(h)
    rec.server("a", "vm-a", "ACTIVE", "harness-compute", None, None, t=0, power_state=1, updated=iso(-50))
    rec.server("a", "vm-a", "ACTIVE", "harness-compute", None, None, t=100, power_state=1, updated=iso(-50))
    rec.server("b", "vm-b", "ACTIVE", "harness-compute", None, None, t=0, power_state=1, updated=iso(-50))
    rec.server("b", "vm-b", "ACTIVE", "harness-compute", None, None, t=100, power_state=1, updated=iso(80))
    rows = {r["name"]: r for r in ev.shared_host_outcome(h, "harness-compute", 10)}
    assert not rows["vm-a"]["rewritten"] and rows["vm-b"]["rewritten"]
    assert rows["vm-a"]["changes"] == [] and rows["vm-a"]["power_state"] == "RUNNING"
    assert ev._epoch(None) == float("-inf") and ev._epoch("2026-12-01T07:10:00") == ev._epoch("2026-12-01T07:10:00Z")


def test_a_source_that_never_cleaned_up_is_a_duplicate_once_it_is_back():
    def h(final_migration):
        hist = History("x")
        rec = ev.Recorder(hist)
        rec.server("a", "vm-a", "ACTIVE", "node1", None, None, t=0)
        rec.server("a", "vm-a", "ACTIVE", "node2", None, "done", t=50)
        rec.server("a", "vm-a", "ACTIVE", "node2", None, final_migration, t=200)
        return hist
    # the frozen source came back at 150 and never restarted nova-compute: migration still done
    assert ev.check(h("done"), "node1", 10, 120, settled_at=180).instances[0].duplicate_on == "node1"
    assert ev.check(h("completed"), "node1", 10, 120, settled_at=180).instances[0].duplicate_on is None
    # without the source back, no judgement from the migration record
    assert ev.check(h("done"), "node1", 10, 120).instances[0].duplicate_on is None
