"""The harness itself: a scenario's damage is repaired before the next one runs.

The first test breaks the membership behind the harness's back (rules that no fault
owns, so no heal removes them); the post-scenario check must find the damage, reset
the cluster, and the next scenario must run on a whole cluster and pass."""
import pytest

from harness.cluster import poll
from harness.plugin import state as plugin_state

pytestmark = [pytest.mark.cluster, pytest.mark.bare_cluster]
SPLIT_TEST = "test_membership_split_behind_the_harness_is_reset"


@pytest.mark.leaves_damage("corosync traffic between the nodes dropped by rules no fault owns")
def test_membership_split_behind_the_harness_is_reset(scenario, cluster):
    topo = cluster.topology
    for node in topo.nodes:
        for peer in topo.nodes:
            if peer.name != node.name:
                cluster.backend.exec(node.name, f"iptables -I INPUT -s {peer.ip} -p udp --dport 5405 -j DROP")

    def split():
        # a fenced topology settles the split by powering a node off: it is split off too
        views = {n: s.online if (s := cluster.state_if_running(n)) else [] for n in cluster.node_names}
        return all(len(online) < len(cluster.node_names) for online in views.values()), views
    poll(split, 60, what="membership split")


def test_scenario_after_a_reset_runs_on_a_whole_cluster(request, scenario, cluster):
    resets = [r for r in plugin_state(request.config).resets if r.after.endswith(SPLIT_TEST)]
    if not resets:
        pytest.skip(f"{SPLIT_TEST} did not run in this session")
    assert resets[-1].ok, resets[-1].line()
    state = cluster.wait_settled(timeout=60)
    assert state.online == sorted(cluster.node_names)
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    fault = scenario.nemesis.node(holder).kill()
    assert scenario.wait_recovered(since=fault.started_at)
    result = scenario.analyse(fault, node=holder)
    assert cluster.vip_holder() not in (None, holder)
    assert result["vip"]["public"]["max_holders"] <= 1
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
