"""The reset's order of steps (pure: the steps and the health check are stubbed)."""
from harness import reset
from harness.cluster import parse_link_status
from harness.reset import ClusterReset

CFGTOOL = """Local node ID 1, transport knet
LINK ID 0 udp
\taddr\t= 10.213.10.11
\tstatus:
\t\tnodeid:          1:\tlocalhost
\t\tnodeid:          2:\tdisconnected
"""


def test_link_status_is_read_from_cfgtool():
    assert parse_link_status(CFGTOOL) == [("1", "localhost"), ("2", "disconnected")]
    assert parse_link_status("Printing ring status.\nRING ID 0\n\tstatus\t= ring 0 active") == []


class Stubbed(ClusterReset):
    def __init__(self, healths):
        self.healths, self.ran = list(healths), []
        self.log = lambda m: None

    def health(self):
        return self.healths.pop(0)

    def clear_and_cleanup(self): self.ran.append("cleanup")
    def restart_stack(self): self.ran.append("stack")
    def restart_nodes(self): self.ran.append("nodes")
    def reprovision(self): self.ran.append("reprovision")


def test_links_down_below_the_stack_skip_the_stack_restart():
    reset = Stubbed([["node1: corosync link to nodeid 2 (node2) disconnected"], []])
    record = reset("t", "split")
    assert reset.ran == ["cleanup", "nodes"] and record.ok
    assert record.steps[1].startswith("restart cluster stack: skipped")


def test_other_damage_takes_every_step_in_order():
    reset = Stubbed([["pacemaker not running on node2"], ["still"], []])
    record = reset("t", "damage")
    assert reset.ran == ["cleanup", "stack", "nodes"] and record.ok and len(record.steps) == 3


def test_clearing_a_node_removes_the_qdisc_of_its_cluster_interface():
    assert "tc qdisc del dev eth1 root" in reset.clear_node("eth1")
    assert "tc qdisc del dev eth0 root" in reset.clear_node("eth0")
