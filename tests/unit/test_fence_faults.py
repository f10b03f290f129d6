"""The broken fence device: the gate answers 503 to everything while the flag exists, and a
nemesis heals it before any other fault (healing a lost node waits for its fencing)."""
from types import SimpleNamespace

from harness.backends.fencegate import FenceGate
from harness.faults import FenceDeviceFailure, Nemesis, NodeKill, NodeShutdown


def test_gate_out_of_service_refuses_everything(tmp_path):
    flag = tmp_path / "out-of-service"
    gate = FenceGate("r1", "127.0.0.1", certs=None, sock=str(tmp_path / "no-engine.sock"), out_of_service=flag)
    flag.touch()
    status, body = gate.handle("POST", "/v1.41/containers/ha-harness-r1-node1/kill")
    assert status == 503 and b"out of service" in body
    flag.unlink()
    status, _ = gate.handle("DELETE", "/v1.41/containers/x")       # working again: the filter decides
    assert status == 403


class History:
    def __init__(self):
        self.t = 0.0

    def record(self, kind, **kw):
        self.t += 1
        return {"t": self.t, **kw}


def test_broken_device_is_healed_before_the_lost_node():
    order = []

    class Backend:
        def fence_device_broken(self, broken):
            order.append(f"device broken={broken}")

        def kill(self, node):
            order.append(f"kill {node}")

        def power_state(self, node):
            return "running"

        def exec(self, node, cmd, timeout, check):
            return SimpleNamespace(ok=True)

    cluster = SimpleNamespace(backend=Backend(), expected_down=set(), topology=SimpleNamespace(fencing=None),
                              node_names=["node1", "node2"])
    nemesis = Nemesis(cluster, provisioner=None, history=History())
    nemesis.restore_node = lambda node: order.append(f"restore {node}")
    FenceDeviceFailure(nemesis).apply()
    NodeKill(nemesis, "node1").apply()
    nemesis.heal_all()
    assert order == ["device broken=True", "kill node1", "device broken=False", "restore node1"]


def test_a_shutdown_killed_at_its_timeout_is_recorded():
    events = []

    class Recording(History):
        def record(self, kind, **kw):
            events.append(kw)
            return super().record(kind, **kw)

    class Backend:
        def __init__(self, clean):
            self.clean = clean

        def shutdown(self, node, timeout):
            assert timeout == NodeShutdown.TIMEOUT_S
            return self.clean

    for clean in (True, False):
        events.clear()
        cluster = SimpleNamespace(backend=Backend(clean), expected_down=set(), node_names=["node1", "node2"])
        NodeShutdown(Nemesis(cluster, provisioner=None, history=Recording()), "node1").apply()
        applied = next(e for e in events if e["phase"] == "applied")
        assert applied.get("forced_after_s") == (None if clean else NodeShutdown.TIMEOUT_S)
        assert cluster.expected_down == {"node1"}


def test_settle_boots_a_node_fenced_after_its_heal():
    """The heal booted node1; the cluster, quorate again only later, then fenced it off. The
    wait for a settled cluster boots it once more (as an operator would) instead of waiting
    for a node that nothing will start."""
    from harness.cluster import NotSettled
    power = {"node1": "running", "node2": "running", "node3": "running"}
    booted = []

    class Cluster:
        backend = SimpleNamespace(power_state=lambda n: power[n])
        topology = SimpleNamespace(fencing=SimpleNamespace())
        node_names = sorted(power)
        calls = 0

        def wait_settled(self, timeout):
            Cluster.calls += 1
            if Cluster.calls == 1:
                power["node1"] = "stopped"          # fenced off while the first wait ran
                raise NotSettled("online=['node2', 'node3']")
            if power["node1"] != "running":
                raise NotSettled("online=['node2', 'node3']")
            return "settled"

    nemesis = Nemesis(Cluster(), provisioner=None, history=History())

    def restore(node):
        booted.append(node)
        power[node] = "running"
    nemesis.restore_node = restore
    assert nemesis.wait_settled(timeout=5, chunk_s=0.01) == "settled"
    assert booted == ["node1"]


def test_settle_still_fails_when_the_cluster_does_not_settle():
    from harness.cluster import NotSettled
    import pytest

    class Cluster:
        backend = SimpleNamespace(power_state=lambda n: "running")
        topology = SimpleNamespace(fencing=SimpleNamespace())
        node_names = ["node1", "node2"]

        def wait_settled(self, timeout):
            raise NotSettled("transition pending")

    with pytest.raises(NotSettled):
        Nemesis(Cluster(), provisioner=None, history=History()).wait_settled(timeout=0.05, chunk_s=0.01)


def test_nodes_rebooted_by_fencing_are_waited_for_before_the_heal_check():
    """A node fenced with a reboot is powered on but not answering yet (a TCG VM boots for
    1-2 min): the heal waits for it instead of reporting it unreadable."""
    answers = {"node1": True, "node2": False}
    waited = []
    backend = SimpleNamespace(boot_timeout=900.0, power_state=lambda n: {"node3": "paused"}.get(n, "running"),
                              exec=lambda n, cmd, timeout, check: SimpleNamespace(ok=answers[n]))
    cluster = SimpleNamespace(backend=backend, node_names=["node1", "node2", "node3"])
    provisioner = SimpleNamespace(wait_booted=lambda node, timeout: waited.append((node, timeout)))
    nemesis = Nemesis(cluster, provisioner=provisioner, history=History())
    assert nemesis.wait_rebooted() == ["node2"]          # node3 is frozen: not a boot to wait for
    assert waited == [("node2", 900.0)]


def test_a_gate_that_ignores_sigterm_is_found_and_killed(tmp_path):
    """A leftover gate kept its port and the re-provisioned run's gate could not bind it (seen
    on VMs): gates are found by their command line and killed when SIGTERM does not end them."""
    import signal
    import subprocess
    import sys
    import time
    from harness.backends import fencegate
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('up', flush=True); time.sleep(60)",
                                 "harness.backends.fencegate", "rtest0042"], stdout=subprocess.PIPE)
    assert stubborn.stdout.readline() == b"up\n"
    assert fencegate._gate_processes("rtest0042") == [stubborn.pid]
    assert fencegate._gate_processes("rtest0043") == []
    t = time.monotonic()
    stubborn.send_signal(signal.SIGTERM)
    fencegate._reap(stubborn.pid, grace_s=0.5)
    assert stubborn.wait(timeout=5) == -signal.SIGKILL and time.monotonic() - t < 5
