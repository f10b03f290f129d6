"""Run facts: package versions and resource-agent checksums read through the backend."""
from pathlib import Path

from harness import topology
from harness.backends import ExecResult
from harness.report import facts

TOPOLOGIES = Path(__file__).resolve().parents[2] / "harness" / "topologies"
IPADDR2 = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2"
STOCK = "/var/lib/ha-harness/stock-agents/heartbeat/IPaddr2"     # kept by agentpatch when patched


class Backend:
    """Answers like a node: node1 is dead, node2 has everything but crmsh."""
    def __init__(self):
        self.calls = []

    def exec(self, node, cmd, timeout=60, check=True):
        self.calls.append((node, cmd))
        if node == "node1":
            raise RuntimeError("container is not running")
        if cmd.startswith("dpkg-query"):
            return ExecResult(1, "pacemaker 2.1.5-1+deb12u1\ncorosync 3.1.7-1\nresource-agents 1:4.12.0-2\n",
                              "dpkg-query: no packages found matching crmsh\n")
        return ExecResult(0, f"{'ab' * 32}  {IPADDR2}\n", "")


def test_only_ocf_agents_are_checksummed():
    t = topology.load(TOPOLOGIES / "ha-2node.yaml")
    assert facts.ocf_agents(t) == [{"resources": ["vip"], "agent": "ocf:heartbeat:IPaddr2",
                                    "path": IPADDR2, "sha256": None}]      # web is systemd:harness-web


def test_dpkg_query_command_and_parsing():
    assert facts.DPKG_QUERY.startswith("dpkg-query -W -f='${Package} ${Version}\\n' "
                                       "pacemaker corosync resource-agents crmsh ")
    assert "keystone" in facts.DPKG_QUERY and "nova-api" in facts.DPKG_QUERY
    assert facts.parse_dpkg("corosync 3.1.7-1\nresource-agents 1:4.12.0-2\n\n") == {
        "corosync": "3.1.7-1", "resource-agents": "1:4.12.0-2"}
    assert facts.parse_sha256sum(f"{'0' * 64}  /a b\nsha256sum: /x: No such file\n") == {"/a b": "0" * 64}


def test_cluster_facts_from_the_first_node_that_answers():
    t = topology.load(TOPOLOGIES / "ha-2node.yaml")
    b = Backend()
    f = facts.cluster_facts(b, t)
    assert f["packages_node"] == "node2"
    assert f["packages"] == {"pacemaker": "2.1.5-1+deb12u1", "corosync": "3.1.7-1", "resource-agents": "1:4.12.0-2"}
    assert f["resource_agents"][0]["sha256"] == "ab" * 32
    assert f["fact_errors"] == ["node1: RuntimeError: container is not running", "node2: package crmsh not installed"]
    assert (("node2", f"sha256sum {IPADDR2} {STOCK}")) in b.calls
    assert "stock_sha256" not in f["resource_agents"][0]          # not patched: no stock copy kept


def test_patched_agent_records_the_stock_hash():
    class Patched(Backend):
        def exec(self, node, cmd, timeout=60, check=True):
            r = super().exec(node, cmd, timeout, check)
            return ExecResult(1, r.out + f"{'cd' * 32}  {STOCK}\n", "") if cmd.startswith("sha256sum") else r
    f = facts.cluster_facts(Patched(), topology.load(TOPOLOGIES / "ha-2node.yaml"))
    assert f["resource_agents"][0]["sha256"] == "ab" * 32 and f["resource_agents"][0]["stock_sha256"] == "cd" * 32


def test_host_facts_without_docker():
    h = facts.host_facts(backend=None)
    assert h["docker"] is None and h["python"].count(".") == 2 and h["kernel"]
