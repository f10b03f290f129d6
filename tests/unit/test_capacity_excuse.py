"""A failed scenario on a host below its topology's cores, saturated throughout, becomes the
expected failure "the host, not the cluster"; everything else keeps its outcome (pure logic:
fake report, scenario and history)."""
from types import SimpleNamespace

from harness import plugin
from harness.history import History


def _scenario(busy: float, cpus: int = 2, min_cpus: int = 4, fault_applied: bool = True):
    h = History("s")
    for i in range(20):
        h.record("host", t=float(i), busy=busy, cpus=cpus)
    if fault_applied:
        h.record("fault", t=3.0, id="node-kill-1", fault="node-kill", phase="applied", target="node2")
    topo = SimpleNamespace(min_cpus=min_cpus, name="os-aa-3node")
    return SimpleNamespace(history=h, cluster=SimpleNamespace(topology=topo))


def _run(sc, when="call", failed=True, xfail=None):
    report = SimpleNamespace(failed=failed, outcome="failed" if failed else "passed")
    if xfail:
        report.wasxfail = xfail
    plugin._excuse_a_host_below_capacity(SimpleNamespace(funcargs={"scenario": sc}), SimpleNamespace(when=when), report)
    return report


def test_a_failure_on_a_saturated_host_below_capacity_is_the_hosts():
    r = _run(_scenario(0.99))
    assert r.outcome == "skipped"
    assert r.wasxfail.startswith("the host, not the cluster: os-aa-3node needs 4 cores, this host has 2")


def test_a_baseline_that_never_settled_on_such_a_host_is_the_hosts_too():
    assert _run(_scenario(0.99, fault_applied=False)).outcome == "skipped"


def test_everything_else_keeps_its_outcome():
    assert _run(_scenario(0.99, cpus=4)).outcome == "failed"               # the cores it needs
    assert _run(_scenario(0.6)).outcome == "failed"                        # CPU to spare
    assert _run(_scenario(0.99, min_cpus=0)).outcome == "failed"           # no need declared
    assert _run(_scenario(0.99), when="teardown").outcome == "failed"      # audits are not excused here
    assert _run(_scenario(0.99), failed=False).outcome == "passed"
    assert _run(_scenario(0.99), xfail="its own reason").wasxfail == "its own reason"
