"""Composed faults on a seeded random schedule: reproducible from the test id."""
import pytest

from harness.schedule import Schedule

pytestmark = pytest.mark.cluster


def test_seeded_random_schedule_then_recovery(schedule_seed, scenario, cluster):
    """Two faults at random times on random nodes (the seed comes from the test id, or
    --schedule-seed to replay a printed plan); once the last one is healed every client recovers."""
    nodes = cluster.node_names
    kinds = ("kill", "freeze", "isolate") if len(nodes) >= 3 else ("kill", "freeze")
    plan = Schedule.random(schedule_seed, nodes, kinds=kinds, count=2, window_s=30,
                           hold_s=(5, 10))
    print(f"seed {plan.seed}: {plan}")
    scenario.start_probes()
    scenario.baseline()
    with plan.run(scenario.nemesis):
        assert plan.wait(timeout=600), "the schedule did not finish"
    assert len(plan.applied) == 2
    last_heal = max(fault.healed_at for _, fault in plan.applied)
    # a node the cluster fences after its heal booted it is booted again, as an operator would
    scenario.nemesis.wait_settled(timeout=240)
    assert scenario.wait_recovered(since=last_heal), "clients did not recover after the last heal"
    # figures per fault, each judged up to the start of the next one (reported, not asserted:
    # a window can end before its recovery when the next fault follows closely)
    for i, (_, fault) in enumerate(plan.applied):
        nxt = plan.applied[i + 1][1].started_at if i + 1 < len(plan.applied) else None
        scenario.analyse(fault, node=fault.target, end=nxt)
