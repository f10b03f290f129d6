"""Scenario.wait_recovered (pure logic, no cluster): recovered means every client probe
steady at the same time, not each one steady at some point."""
import threading
import time
from types import SimpleNamespace

from harness.history import History
from harness.probes import ProbeSet
from harness.scenario import Scenario


def _scenario(history, timeout=0.05):
    sc = Scenario("s", cluster=None, history=history, nemesis=SimpleNamespace(before_node_loss=[]), target_s=5)
    sc._probes = ProbeSet(history, [SimpleNamespace(name=n, kind="sample", timeout=timeout) for n in ("a", "b")])
    return sc


def _samples(history, probe, ok, n=1):
    for _ in range(n):
        history.record("sample", probe=probe, ok=ok)


def test_a_probe_that_fails_again_while_another_is_awaited_is_waited_for():
    h = History("c")
    sc = _scenario(h)
    _samples(h, "a", True, 8)
    _samples(h, "b", False, 3)

    def later():
        time.sleep(0.2)
        _samples(h, "a", False)          # a relapses ...
        _samples(h, "b", True, 8)        # ... just before b is steady
        time.sleep(0.4)
        _samples(h, "a", True, 8)
    t = threading.Thread(target=later)
    t.start()
    try:
        assert sc.wait_recovered(since=0.0)
        assert all(s["ok"] for p in ("a", "b") for s in h.samples(p)[-8:])
    finally:
        t.join()


def test_no_steady_answers_by_the_target_is_not_recovered():
    h = History("c")
    sc = _scenario(h)
    _samples(h, "a", True, 8)
    _samples(h, "b", False, 3)
    start = time.monotonic()
    assert not sc.wait_recovered(since=0.0, timeout=0.3)
    assert time.monotonic() - start < 2


def test_a_failure_recorded_late_under_its_start_time_is_seen():
    """Attempts are recorded when they end, under the time they started: a timeout lands
    behind good samples already counted. Steady must hold once every attempt in flight ended."""
    h = History("c")
    sc = _scenario(h, timeout=0.3)
    base = h.now()
    for i in range(10):
        h.record("sample", t=base + 0.01 * i, probe="a", ok=True)
        h.record("sample", t=base + 0.01 * i, probe="b", ok=True)
    started = base + 0.1

    def timeouts_land():
        time.sleep(0.1)
        h.record("sample", t=started, probe="b", ok=False)       # began before, ended now
        time.sleep(0.5)
        for i in range(1, 9):
            h.record("sample", t=started + 0.01 * i, probe="b", ok=True)
    t = threading.Thread(target=timeouts_land)
    t.start()
    try:
        assert sc.wait_recovered(since=0.0)
        assert h.samples("b")[-9]["ok"] is False and all(x["ok"] for x in h.samples("b")[-8:])
    finally:
        t.join()
