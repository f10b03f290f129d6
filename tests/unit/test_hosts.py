"""The `hosts` fixture's mapping: one testinfra host per node, made on first use."""
from types import SimpleNamespace

import pytest

from harness.hosts import Hosts


class FakeBackend:
    topology = SimpleNamespace(nodes=[SimpleNamespace(name="node1"), SimpleNamespace(name="node2")])
    specs: list = []

    def testinfra_spec(self, node):
        self.specs.append(node)
        return "local://"


def test_one_host_per_node_made_once():
    backend = FakeBackend()
    hosts = Hosts(backend)
    assert list(hosts) == ["node1", "node2"] and len(hosts) == 2
    assert hosts["node2"] is hosts["node2"] and backend.specs == ["node2"]
    assert hosts["node2"].run("true").rc == 0


def test_unknown_node_names_the_nodes():
    with pytest.raises(KeyError, match="no node 'node9' .*node1, node2"):
        Hosts(FakeBackend())["node9"]


def test_backends_say_how_testinfra_reaches_a_node():
    from harness import topology
    from harness.backends import get_backend
    t = topology.load_named("ha-2node")
    assert get_backend("vagrant", t, "r1").testinfra_spec("node1").startswith(
        "ssh://root@node1?ssh_config=/var/lib/ha-harness/vagrant/r1/ssh-config&controlpath=")
