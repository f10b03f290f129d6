"""The writes scenario's baseline: writers slow down only when the host was saturated."""
import pytest

from harness.history import History
from harness.scenarios.test_writes_during_failover import paced_baseline


class Writers:
    def __init__(self):
        self.interval = 3.0

    def slow_down(self, factor=2.0):
        self.interval *= factor
        return self.interval


class Scenario:
    """baseline() fails `fails` times; each attempt leaves host samples of `busy`."""
    def __init__(self, fails, busy):
        self.history, self.fails, self.busy, self.calls = History("t", {}), fails, busy, []

    def baseline(self, seconds):
        self.calls.append(seconds)
        t = self.history.now()
        for i in range(10):
            self.history.record("host", t=t + i * 0.01, busy=self.busy, load1=9.0, cpus=2)
        if self.fails:
            self.fails -= 1
            raise TimeoutError("probe os:keystone-login: no 6 consecutive good samples in 96.0s")


def test_a_saturated_host_slows_the_writers_and_notes_it():
    sc, w = Scenario(fails=1, busy=1.0), Writers()
    paced_baseline(sc, w)
    assert w.interval == 6.0 and sc.calls == [6.0, 12.0]
    (note,) = sc.history.events("note")
    assert "writers slowed from every 3 s to every 6 s" in note["text"]


def test_an_idle_host_fails_at_once_and_says_so():
    sc, w = Scenario(fails=1, busy=0.3), Writers()
    with pytest.raises(TimeoutError, match=r"host CPU busy mean 30%, saturated 0 of \d+ s; writers every 3 s"):
        paced_baseline(sc, w)
    assert w.interval == 3.0


def test_the_slowdowns_are_bounded():
    sc, w = Scenario(fails=5, busy=1.0), Writers()
    with pytest.raises(TimeoutError, match="writers every 12 s"):
        paced_baseline(sc, w, slowdowns=2)
    assert len(sc.calls) == 3
