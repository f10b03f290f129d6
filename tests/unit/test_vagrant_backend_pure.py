"""Pure parts of the Vagrant backend: run names, subnets, the libvirt fence engine."""
import ipaddress
import json

from harness.backends import free_subnets
from harness.backends.fencegate import LibvirtEngine, fence_events
from harness.backends import vagrantruns


def test_run_ids_come_back_from_libvirt_names():
    assert vagrantruns._run_of("ha-harness-12345abcd-node1") == "12345abcd"
    assert vagrantruns._run_of("ha-harness-keep-ha-2node-mgmt") == "keep-ha-2node"
    assert vagrantruns._run_of("ha-harness-r1-node2.img") == "r1"
    # not a run's: another tool's domain, and the box's base volume (an image)
    assert vagrantruns._run_of("debian12") is None
    assert vagrantruns._run_of("ha-harness-cluster-477dbd2b5983_vagrant_box_image_0_box.img") is None


def test_free_subnets_skip_what_is_used():
    used = [ipaddress.ip_network("10.214.0.0/24"), ipaddress.ip_network("10.214.1.0/24")]
    got = free_subnets("10.214.0.0/24", "10.214.0.0/16", used)
    assert next(got) == "10.214.2.0/24"
    assert next(free_subnets("10.213.15.0/24", "10.214.0.0/16", used)) == "10.213.15.0/24"


class FakeVirsh:
    def __init__(self, states):
        self.states, self.calls = dict(states), []

    def __call__(self, *args):
        self.calls.append(args)
        if args[0] == "list":
            return "".join(f"{d}\n" for d in self.states)
        if args[0] == "domstate":
            return self.states[args[1]] + "\n"
        if args[0] == "destroy":
            self.states[args[1]] = "shut off"
        if args[0] == "start":
            self.states[args[1]] = "running"
        return ""


def test_libvirt_engine_lists_only_the_runs_domains():
    v = FakeVirsh({"ha-harness-r1-node1": "running", "ha-harness-r1-node2": "shut off",
                   "ha-harness-r2-node1": "running", "other": "running"})
    own = LibvirtEngine("ha-harness", v).own("r1")
    assert [(c["Names"], c["Status"][:4]) for c in own] == [
        (["/ha-harness-r1-node1"], "Up"), (["/ha-harness-r1-node2"], "Exit")]


def test_libvirt_engine_power_actions_as_fence_docker_asks():
    v = FakeVirsh({"ha-harness-r1-node2": "running"})
    e = LibvirtEngine("ha-harness", v)
    status, body = e.forward("GET", "/v1.41/containers/ha-harness-r1-node2/json")
    assert status == 200 and json.loads(body)["State"]["Running"] is True
    assert e.forward("POST", "/v1.41/containers/ha-harness-r1-node2/kill")[0] == 204
    assert v.states["ha-harness-r1-node2"] == "shut off"
    assert json.loads(e.forward("GET", "/v1.41/containers/ha-harness-r1-node2/json")[1])["State"]["Running"] is False
    e.forward("POST", "/v1.41/containers/ha-harness-r1-node2/restart")
    assert v.states["ha-harness-r1-node2"] == "running"
    assert [c for c in v.calls if c[0] in ("destroy", "start")] == [
        ("destroy", "ha-harness-r1-node2"), ("start", "ha-harness-r1-node2")]
    assert e.forward("DELETE", "/v1.41/containers/ha-harness-r1-node2")[0] == 403


def test_fence_events_name_nodes_and_refusals(monkeypatch):
    log = [{"t": 10.0, "method": "GET", "path": "/v1.41/containers/json?all=1", "status": 200},
           {"t": 11.0, "method": "POST", "path": "/v1.41/containers/d-node2/restart", "status": 204},
           {"t": 12.0, "method": "GET", "path": "/v1.41/containers/d-node1/json", "status": 503},
           {"t": 99.0, "method": "POST", "path": "/v1.41/containers/d-node1/kill", "status": 204}]
    monkeypatch.setattr("harness.backends.fencegate.requests_since", lambda run, t: [e for e in log if e["t"] >= t])
    assert fence_events("r1", 0, 50, {"d-node1": "node1", "d-node2": "node2"}) == [
        (11.0, "fence device: restart node2 done"), (12.0, "fence device: inspect node1 REFUSED (HTTP 503)")]


def test_the_vip_goes_on_the_backends_cluster_nic():
    from harness import topology
    from harness.backends import get_backend
    from harness.provision import render_cib
    t = topology.load_named("ha-2node")
    assert " nic=eth1 " in render_cib(get_backend("vagrant", t, "r1").topology)
    assert " nic=eth0 " in render_cib(t)          # containers: the default


def test_only_cluster_nic_is_a_cluster_placeholder(tmp_path):
    import pytest
    import yaml
    from harness import topology
    raw = yaml.safe_load(topology.SHIPPED.joinpath("ha-2node.yaml").read_text())
    raw["resources"]["primitives"][0]["params"]["nic"] = "${cluster.mtu}"
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(topology.TopologyError, match=r"only \$\{cluster.nic\} exists"):
        topology.load(tmp_path / "t.yaml")


def test_a_vm_the_fence_device_booted_again_is_usable_and_gets_its_clock_set(monkeypatch):
    from harness import topology
    from harness.backends.vagrantnodes import VagrantBackend
    b = VagrantBackend(topology.load_named("ha-2node"), "r1")
    state = {"node1": "stopped"}
    monkeypatch.setattr(b, "power_state", lambda h: state[h])
    monkeypatch.setattr(b, "_close", lambda h: None)
    b._down.add("node1")                       # the harness killed it
    r = b._run("node1", ["true"])
    assert (r.rc, r.err) == (125, "node1 is stopped")
    state["node1"] = "running"                 # fencing (reboot) powered it on again
    assert b._unavailable("node1") is None and "node1" in b._unsynced and not b._down
    b._frozen.add("node1")
    state["node1"] = "paused"
    assert b._unavailable("node1") == "frozen"
