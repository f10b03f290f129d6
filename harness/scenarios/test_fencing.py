"""Fencing itself under test (topologies with a fencing section): a fence device that
fails while a node is lost, and a node fenced on an operator's request."""
import time

import pytest

from harness import checkers
from harness.cluster import poll
from harness.topology import FENCE_DEVICE_ID

pytestmark = [pytest.mark.cluster, pytest.mark.fencing]

DEVICE_DOWN_S = 15        # how long the power switch stays dead after the node is lost


def _refused_fencing(cluster, since_wall: float) -> list[str]:
    return [what for _, what in cluster.backend.fence_events(since_wall, time.time()) if "REFUSED" in what]


def test_fence_device_failure_keeps_resources_stopped_until_it_returns(scenario, cluster):
    """The VIP holder dies while the fence device is broken: the survivor cannot fence it, so
    it must not start the lost node's resources (they could still run there); once the
    device works again, fencing completes and the resources start on the survivor."""
    holder = cluster.vip_holder()
    survivor = next(n for n in cluster.node_names if n != holder)
    vip = cluster.vip_resource("public")
    # the stonith resource's start or monitor where it moves fails while the device is broken
    scenario.expected_failures.add(FENCE_DEVICE_ID)
    scenario.start_probes()
    scenario.baseline()
    device = scenario.nemesis.fence_device_failure()
    kill = scenario.nemesis.node(holder).kill()
    refused = poll(lambda: (bool(r := _refused_fencing(cluster, scenario.history.t0_wall)), r),
                   60 * cluster.backend.wait_factor,
                   what=f"a fencing attempt on {holder} refused by the broken device")
    print(f"while the device is broken: {refused[0]} ({len(refused)} refused so far)")
    time.sleep(DEVICE_DOWN_S)
    view = cluster.state(node=survivor)
    assert view.nodes[holder].unclean, f"{survivor} should still hold {holder} unclean (fencing failed)"
    assert survivor not in view.where(vip), f"{survivor} started {vip} although {holder} was never fenced"
    device.heal()
    recovered = scenario.wait_recovered(since=device.healed_at)
    # the downtime counts from the kill, but the cluster can only recover once the device
    # works: the target holds from then (the outage before it is the harness's, its length
    # the platform's: kill to repair took 52 s on TCG VMs, the refusal alone ~37 s of it)
    outage = device.healed_at - kill.started_at
    result = scenario.analyse(kill, node=holder, target_s=scenario.target_s + outage)
    print(f"device broken for {outage:.1f} s of the downtime; target {scenario.target_s:.0f} s from its return")
    assert recovered, result["verdict"]["reasons"]
    assert cluster.vip_holder() == survivor
    assert result["vip"]["public"]["max_holders"] <= 1
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


def _power_offs(cluster, node: str, since_wall: float) -> list[str]:
    """The fence device's power-offs of `node` since then (a reboot is kill + start, or one
    restart for a cycling device)."""
    return [w for _, w in cluster.backend.fence_events(since_wall, time.time())
            if w.endswith(" done") and w.split()[2:4] in (["kill", node], ["restart", node])]


def test_fencing_on_request_then_rejoin_without_a_fence_loop(scenario, cluster):
    """`stonith_admin --reboot` of the passive node: fenced, back in the cluster once its stack
    starts, and not fenced again afterwards (no fence loop); clients of the VIP see nothing."""
    holder = cluster.vip_holder()
    victim = next(n for n in cluster.node_names if n != holder)
    scenario.start_probes()
    scenario.baseline()
    fault = scenario.nemesis.node(victim).fence()
    since = fault.started_at + scenario.history.t0_wall
    assert _power_offs(cluster, victim, since), f"the fence device never acted on {victim}"
    fault.heal()            # lets a fencing of the victim still queued finish first
    # a rebooted container is back in seconds, a TCG VM boots for 1-2 min (wait_factor 3)
    poll(lambda: (victim in (s := cluster.state()).online, s.online), 120 * cluster.backend.wait_factor,
         what=f"{victim} back online")
    time.sleep(30)          # a fence loop shows within a few membership rounds
    again = _power_offs(cluster, victim, since)[1:]
    result = scenario.analyse(fault, node=victim)       # reads the journals' milestones too
    disturbed = {p: d["failures"] for p, d in result["downtime"].items() if d["failures"]}
    if again and (overlap := checkers.fencing_overlap(scenario.history.events("clusterlog"), victim)):
        # the second fencing boots the node once more: what the clients saw meanwhile is stated
        pytest.xfail(f"finding: fenced twice, not a loop: {overlap}; then {again}; failed client "
                     f"samples: {disturbed or 'none'} ({'; '.join(result['verdict']['reasons']) or 'within target'})")
    assert not again, f"{victim} was fenced again after the requested reboot: {again}"
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
    assert not disturbed, f"fencing the passive node disturbed clients: {disturbed}"
