"""Node-level failures: what clients of the VIP see, and how the cluster recovers."""

import pytest

from harness import checkers
from harness.cluster import poll
from harness.scenario import known_weakness_without_fencing

pytestmark = pytest.mark.cluster


def assert_within_target(result, scenario) -> None:
    """The recovery target; over it, the expected failure when the time went to the layout's
    ordering. Seen on os-ap-3node (main job, 2 cores): a clean shutdown of the holder stopped
    its 15 group members one by one (18 s), then the survivor started them one by one; cinder-api,
    last of its group, was started 136 s after the fault and answered 0.1 s later."""
    if not result["verdict"]["passed"]:
        primitives = {p.id for p in scenario.cluster.topology.resources.primitives}
        history = scenario.history
        samples = {p: history.samples(p) for p in result["downtime"]}
        if why := checkers.serial_start_explains(result, primitives, samples, history.events("host")):
            pytest.xfail(f"the ordered group's one-by-one start, not the APIs: {why}")
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


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
    assert_within_target(result, scenario)


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
    assert cluster.vip_holder() == holder
    haproxy = cluster.topology.haproxy
    if haproxy is None:
        # active/passive: the VIP stayed where it was, so losing a passive node must not disturb clients.
        # Seen in the os-ap-2node main job (2 cores): 2 password logins and a glance call timed out
        # (2 s) while the killed node booted and rejoined; both nodes share the host's cores, which
        # separate machines do not. Only measured saturation explains it: errors, or timeouts on
        # a host with CPU to spare, fail the scenario.
        if why := checkers.only_saturation_timeouts(result):
            pytest.xfail(f"the host, not the cluster: {why}")
        for probe, d in result["downtime"].items():
            assert d["failures"] == 0, (probe, d)
        return
    # active/active: HAProxy on the VIP node keeps sending a share of the requests to the dead
    # node's backends until its checks mark them down; clients may lose that long, no longer
    bound = haproxy.detection_s() + 2.0 + scenario.interval      # + the slowest probe's timeout
    for probe, d in result["downtime"].items():
        print(f"{probe}: {d['failures']}/{d['samples']} failed, unavailable {d['unavailable_s']:.2f}s "
              f"(HAProxy detection bound {bound:.2f}s)")
        assert d["unavailable_s"] <= bound, (probe, d)


def expect_split_brain_without_fencing(request, cluster) -> None:
    # Seen on ha-3node: the majority starts the VIP as soon as it loses the node, while the
    # cut node only stops its copy once it notices it lost quorum (two holders for ~1 s).
    known_weakness_without_fencing(request, cluster, "the cut node still holds the VIP while the majority starts it")


def test_freeze_vip_holder(request, scenario, cluster):
    """A frozen node is not dead: its kernel still holds the VIP. Clients must still
    recover through the survivor within the target; the thaw must not leave damage."""
    topo = cluster.topology
    if topo.shared_volumes:
        # Nobody takes the shared disk away from the frozen node: its database keeps the
        # disk locked and the survivor's start fails until the node thaws (on a real SAN
        # it would corrupt it instead).
        known_weakness_without_fencing(request, cluster, "a frozen node keeps the shared-disk database "
                                                         "and blocks the failover")
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


@pytest.mark.parametrize("how", ["shutdown", "reboot"])
def test_graceful_shutdown_or_reboot_of_vip_holder(scenario, cluster, how):
    """A clean shutdown (pacemaker stops and hands its resources over) and a reboot
    (kill, then the node boots and rejoins at once)."""
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    fault = getattr(scenario.nemesis.node(holder), how)()
    assert scenario.wait_recovered(since=fault.started_at)
    result = scenario.analyse(fault, node=holder)
    fault.heal()
    assert cluster.wait_settled(timeout=240).online == sorted(cluster.node_names)
    assert_within_target(result, scenario)


@pytest.mark.nodes(3)
def test_corosync_ring_cut_on_one_of_three(request, scenario, cluster):
    """Only the corosync traffic of the VIP holder is dropped (clients still reach it):
    it loses quorum and stops its resources, the other two take over."""
    expect_split_brain_without_fencing(request, cluster)
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.isolate(holder, only_corosync=True) as fault:
        poll(lambda: (cluster.vip_holders(cluster.topology.vip("public").ip) not in ([], [holder]),
                      cluster.vip_holders(cluster.topology.vip("public").ip)), 60, what="VIP moved off the cut node")
        assert scenario.wait_recovered(since=fault.started_at + 1.0)
    result = scenario.analyse(fault, node=holder)
    assert result["vip"]["public"]["max_holders"] <= 1, "the cut node kept the VIP while another took it"
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
def test_isolated_node_loses_quorum_and_stops_resources(request, scenario, cluster):
    expect_split_brain_without_fencing(request, cluster)
    holder = cluster.vip_holder()
    majority = [n for n in cluster.node_names if n != holder]
    vip_rsc = cluster.vip_resource("public")
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.isolate(holder) as fault:
        def isolated_stopped():
            # a fenced topology may power the isolated node off first: nothing runs there either
            if (s := cluster.state_if_running(holder)) is None:
                return True, "powered off (fenced)"
            return (not s.quorum and holder not in s.where(vip_rsc)), f"quorum={s.quorum} vip on {s.where(vip_rsc)}"
        poll(isolated_stopped, 60, what=f"{holder} without quorum and resources (or fenced)")

        def majority_took_over():
            s = cluster.state(node=majority[0])
            return (s.quorum and s.where(vip_rsc) in ([majority[0]], [majority[1]])), s.where(vip_rsc)
        poll(majority_took_over, 60, what="majority holds the VIP")
        assert scenario.wait_recovered(since=fault.started_at + 1.0)
        assert cluster.vip_holders(cluster.topology.vip("public").ip) in ([majority[0]], [majority[1]])
    result = scenario.analyse(fault, node=holder)
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
    assert result["vip"]["public"]["max_holders"] <= 1, "the isolated node kept the VIP while another took it"
