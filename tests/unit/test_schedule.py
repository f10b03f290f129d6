"""Scheduling logic of composed faults, against a fake nemesis that only records
when faults were applied and healed (the act side is the real Nemesis' job)."""
import threading
import time

import pytest

from harness.history import History
from harness.schedule import Schedule, ScheduleError, seed_for

NODES = ["node1", "node2", "node3"]
TOL = 0.15          # scheduling slack on a loaded 2-core machine


class FakeFault:
    def __init__(self, nemesis, kind, target):
        self.nemesis, self.kind, self.target = nemesis, kind, target
        self.id = f"{kind}-{len(nemesis.faults) + 1}"
        self.active, self.heals = True, 0
        self.applied_at, self.healed_at = nemesis.history.now(), None
        nemesis.faults.append(self)

    def heal(self):
        self.heals += 1
        if self.active:
            self.active = False
            self.healed_at = self.nemesis.history.now()


class FakeNemesis:
    def __init__(self, apply_s: float = 0.0):
        self.history = History()
        self.faults: list[FakeFault] = []
        self.apply_s = apply_s          # how long an apply takes (a kill is not instant)

    def _fault(self, kind, target):
        time.sleep(self.apply_s)
        return FakeFault(self, kind, target)

    def node(self, name):
        n = self

        class Node:
            def kill(self): return n._fault("kill", name)
            def freeze(self): return n._fault("freeze", name)
        return Node()

    def isolate(self, name):
        return self._fault("isolate", name)


def fault_action(kind, target):
    return lambda n: n._fault(kind, target)


# ---------------------------------------------------------------- seeds and plans

def test_seed_is_stable_and_differs_per_test():
    a = "tests/scenarios/test_chaos.py::test_random_faults[ha-2node]"
    # pinned: seeds printed in old reports must still replay the same plan
    assert seed_for(a) == 0x321F88B1850BC1CA
    assert seed_for(a) != seed_for(a.replace("2node", "3node"))
    assert 0 <= seed_for(a) < 2 ** 64


def test_seed_does_not_depend_on_the_interpreter():
    import hashlib
    test_id = "tests/x.py::test_a"
    assert seed_for(test_id) == int(hashlib.sha256(test_id.encode()).hexdigest()[:16], 16)


def test_same_seed_same_plan_whatever_the_node_order():
    a = Schedule.random(42, NODES, count=4, window_s=100)
    b = Schedule.random(42, list(reversed(NODES)), count=4, window_s=100)
    assert a.plan() == b.plan() and str(a) == str(b)
    assert Schedule.random(43, NODES, count=4, window_s=100).plan() != a.plan()


def test_random_plan_is_in_the_window_one_fault_at_a_time():
    for seed in range(200):
        plan = Schedule.random(seed, NODES, count=3, window_s=60, hold_s=(5, 20)).plan()
        assert len(plan) == 3
        for step in plan:
            assert step["kind"] in ("kill", "freeze", "isolate") and step["target"] in NODES
            assert 5 <= step["hold_s"] <= 20 and step["at_s"] >= 0
            assert step["at_s"] + step["hold_s"] <= 60 + 1e-9
        for a, b in zip(plan, plan[1:]):
            assert a["at_s"] + a["hold_s"] <= b["at_s"] + 1e-9


def test_overlapping_plan_prefers_free_nodes():
    for seed in range(100):
        plan = Schedule.random(seed, NODES, count=3, window_s=30, hold_s=(10, 20), overlap=True).plan()
        for i, a in enumerate(plan):
            assert a["at_s"] + a["hold_s"] <= 30 + 1e-9
            for b in plan[i + 1:]:
                if b["at_s"] < a["at_s"] + a["hold_s"]:
                    assert a["target"] != b["target"]    # 3 nodes, 3 faults: always one free


def test_plan_errors_come_before_the_run():
    with pytest.raises(ValueError, match="do not fit"):
        Schedule.random(1, NODES, count=4, window_s=60, hold_s=(5, 20))
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        Schedule.random(1, NODES, kinds=("kill", "explode"))
    with pytest.raises(ValueError, match="at least one node"):
        Schedule.random(1, [])
    with pytest.raises(ValueError, match=">= 0"):
        Schedule().add(-1, fault_action("kill", "node1"))


# ---------------------------------------------------------------- running

def test_offsets_and_holds_are_respected():
    nemesis = FakeNemesis()
    plan = Schedule([(0.1, fault_action("kill", "node1"), 0.2),
                     (0.4, fault_action("freeze", "node2"), None)])
    with plan.run(nemesis):
        start = plan.start
        assert plan.wait(timeout=5)
        kill, freeze = nemesis.faults
        assert 0.1 <= kill.applied_at - start < 0.1 + TOL
        assert 0.2 <= kill.healed_at - kill.applied_at < 0.2 + TOL
        assert 0.4 <= freeze.applied_at - start < 0.4 + TOL
        assert freeze.active                     # held until the end
    assert not freeze.active and freeze.heals == 1 and kill.heals == 1


def test_known_kinds_go_through_the_nemesis():
    nemesis = FakeNemesis()
    with Schedule().fault("kill", "node1", 0).fault("isolate", "node2", 0, hold_s=0).run(nemesis) as plan:
        plan.wait(timeout=5)
    assert [(f.kind, f.target) for f in nemesis.faults] == [("kill", "node1"), ("isolate", "node2")]
    assert all(not f.active for f in nemesis.faults)


def test_the_plan_and_each_step_are_in_the_history():
    nemesis = FakeNemesis()
    plan = Schedule.random(7, NODES, count=2, window_s=0.4, hold_s=(0.1, 0.2))
    with plan.run(nemesis):
        plan.wait(timeout=5)
    (planned,) = nemesis.history.events("schedule", phase="plan")
    assert planned["seed"] == 7 and planned["steps"] == plan.plan()
    assert set(planned["steps"][0]) == {"kind", "target", "at_s", "hold_s"}
    steps = nemesis.history.events("schedule", phase="step")
    assert [s["fault_id"] for s in steps] == [f.id for f in nemesis.faults]
    assert [s["step"] for s in steps] == plan.plan()
    (stopped,) = nemesis.history.events("schedule", phase="stop")
    assert stopped["applied"] == 2 and stopped["errors"] == []


def test_stop_mid_run_heals_and_applies_nothing_more():
    nemesis = FakeNemesis()
    plan = Schedule([(0.0, fault_action("kill", "node1"), None),
                     (0.05, fault_action("isolate", "node2"), 5.0),
                     (0.4, fault_action("freeze", "node3"), 1.0)]).run(nemesis)
    time.sleep(0.2)
    plan.stop()
    assert [f.kind for f in nemesis.faults] == ["kill", "isolate"]
    assert all(not f.active and f.heals == 1 for f in nemesis.faults)
    assert nemesis.faults[1].healed_at < 0.5     # not at its 5 s hold
    time.sleep(0.4)
    assert len(nemesis.faults) == 2


def test_stop_during_a_slow_apply_heals_that_fault_too():
    nemesis = FakeNemesis(apply_s=0.3)
    plan = Schedule([(0.0, fault_action("kill", "node1"), None),
                     (0.0, fault_action("kill", "node2"), None)]).run(nemesis)
    time.sleep(0.1)                              # node1's kill is in flight
    plan.stop()
    assert [f.target for f in nemesis.faults] == ["node1"]
    assert not nemesis.faults[0].active


def test_stop_gives_up_waiting_but_the_thread_heals_what_it_applies_late():
    nemesis = FakeNemesis(apply_s=0.4)
    plan = Schedule([(0.0, fault_action("kill", "node1"), None)]).run(nemesis)
    time.sleep(0.1)
    plan.stop(join_timeout=0.05)
    assert plan.wait(timeout=2)
    assert len(nemesis.faults) == 1 and not nemesis.faults[0].active


def test_keyboard_interrupt_heals_everything():
    nemesis = FakeNemesis()
    with pytest.raises(KeyboardInterrupt):
        with Schedule([(0.0, fault_action("kill", "node1"), None),
                       (0.0, fault_action("freeze", "node2"), 30)]).run(nemesis) as plan:
            while len(plan.applied) < 2:
                time.sleep(0.01)
            raise KeyboardInterrupt
    assert len(nemesis.faults) == 2 and all(not f.active for f in nemesis.faults)


def test_a_failing_step_ends_the_run_and_is_raised():
    nemesis = FakeNemesis()

    def broken(n):
        raise RuntimeError("tc netem unavailable")
    plan = Schedule([(0.0, fault_action("kill", "node1"), None), (0.05, broken, 1.0),
                     (0.1, fault_action("freeze", "node2"), 1.0)]).run(nemesis)
    assert plan.wait(timeout=5)
    with pytest.raises(ScheduleError, match="tc netem unavailable"):
        plan.stop()
    assert [f.kind for f in nemesis.faults] == ["kill"] and not nemesis.faults[0].active
    plan.stop()                                  # raised once; a second stop only heals


def test_a_failing_heal_does_not_stop_the_others():
    nemesis = FakeNemesis()

    def bad_heal():
        raise RuntimeError("cannot heal")
    plan = Schedule([(0.0, fault_action("kill", "node1"), None),
                     (0.0, fault_action("kill", "node2"), None)]).run(nemesis)
    while len(plan.applied) < 2:
        time.sleep(0.01)
    nemesis.faults[1].heal = bad_heal            # healed first (newest first)
    with pytest.raises(ScheduleError, match="cannot heal"):
        plan.stop()
    assert not nemesis.faults[0].active


def test_runs_once():
    plan = Schedule().run(FakeNemesis())
    with pytest.raises(ScheduleError, match="runs once"):
        plan.run(FakeNemesis())
    plan.stop()


def test_start_in_the_past_catches_up_in_order():
    nemesis = FakeNemesis()
    late = nemesis.history.now() - 1.0
    plan = Schedule([(0.5, fault_action("kill", "node1"), 0.0),
                     (0.2, fault_action("freeze", "node2"), 0.0)]).run(nemesis, start=late)
    assert plan.wait(timeout=5)
    plan.stop()
    assert [f.kind for f in nemesis.faults] == ["freeze", "kill"]


def test_threads_do_not_leak():
    before = threading.active_count()
    with Schedule([(0.0, fault_action("kill", "node1"), 0.05)]).run(FakeNemesis()) as plan:
        plan.wait(timeout=5)
    assert threading.active_count() <= before
