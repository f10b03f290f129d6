"""Node-level failures: what clients of the VIP see, and how the cluster recovers."""

import pytest

from harness.cluster import poll

pytestmark = pytest.mark.cluster


def test_kill_vip_holder_moves_vip_to_survivor(scenario, cluster):
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    fault = scenario.nemesis.node(holder).kill()
    assert scenario.wait_recovered(since=fault.started_at), "clients got no steady answers within the target"
    result = scenario.analyse(fault, node=holder)
    new_holder = cluster.vip_holder()
    assert new_holder not in (None, holder)
    assert result["vip"]["public"]["after"] == [new_holder]
    assert result["vip"]["public"]["max_holders"] <= 1
    for probe, d in result["downtime"].items():
        assert d["failures"] > 0, f"{probe}: killing the VIP holder must cause a measurable outage"
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


def test_killed_node_rejoins_and_cluster_settles(scenario, cluster):
    holder = cluster.vip_holder()
    victim = next(n for n in cluster.node_names if n != holder)
    survivor_view = lambda: cluster.state(node=holder)
    scenario.start_probes()
    scenario.baseline()
    fault = scenario.nemesis.node(victim).kill()
    poll(lambda: (victim not in survivor_view().online, survivor_view().online), 30, what=f"{victim} lost")
    fault.heal()
    state = cluster.wait_settled(timeout=180)
    assert victim in state.online
    result = scenario.analyse(fault, node=victim)
    # the VIP stayed where it was: losing a passive node must not disturb clients
    for probe, d in result["downtime"].items():
        assert d["failures"] == 0, (probe, d)
    assert cluster.vip_holder() == holder


def test_freeze_vip_holder(request, scenario, cluster):
    """A frozen node is not dead: its kernel still holds the VIP. Clients must still
    recover through the survivor within the target; the thaw must not leave damage."""
    topo = cluster.topology
    if topo.shared_volumes and topo.properties.get("stonith-enabled") == "false":
        # A finding, reported as such: without fencing nobody can take the shared disk away
        # from the frozen node; its database keeps the disk locked and the survivor's start
        # fails until the node thaws (on a real SAN it would corrupt it instead).
        request.applymarker(pytest.mark.xfail(reason="no fencing: a frozen node keeps the shared-disk "
                                                     "database and blocks the failover", strict=False))
        # failed starts on the survivor are this scenario's doing, not unexplained
        scenario.expected_failures.update(p.id for p in topo.resources.primitives)
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.node(holder).freeze() as fault:
        recovered = scenario.wait_recovered(since=fault.started_at + 1.0)
    result = scenario.analyse(fault, node=holder, end=fault.healed_at)
    assert recovered, result["verdict"]["reasons"]
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


@pytest.mark.nodes(3)
def test_kill_one_of_three_keeps_quorum(scenario, cluster):
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    fault = scenario.nemesis.node(holder).kill()
    assert scenario.wait_recovered(since=fault.started_at)
    state = cluster.wait_settled(timeout=120)
    assert state.quorum and holder not in state.online and len(state.online) == 2
    assert cluster.vip_holder() in state.online
    result = scenario.analyse(fault, node=holder)
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


@pytest.mark.nodes(3)
def test_isolated_node_loses_quorum_and_stops_resources(scenario, cluster):
    holder = cluster.vip_holder()
    majority = [n for n in cluster.node_names if n != holder]
    vip_rsc = cluster.vip_resource("public")
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.isolate(holder) as fault:
        def isolated_stopped():
            s = cluster.state(node=holder)
            return (not s.quorum and holder not in s.where(vip_rsc)), f"quorum={s.quorum} vip on {s.where(vip_rsc)}"
        poll(isolated_stopped, 60, what=f"{holder} without quorum and resources")

        def majority_took_over():
            s = cluster.state(node=majority[0])
            return (s.quorum and s.where(vip_rsc) in ([majority[0]], [majority[1]])), s.where(vip_rsc)
        poll(majority_took_over, 60, what="majority holds the VIP")
        assert scenario.wait_recovered(since=fault.started_at + 1.0)
        assert cluster.vip_holders(cluster.topology.vip("public").ip) in ([majority[0]], [majority[1]])
    result = scenario.analyse(fault, node=holder)
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
