"""Daemons that die or are stopped under Pacemaker, the cluster stack included,
and faults Pacemaker must ride out without a failover."""
import time

import pytest

from harness.cluster import poll
from harness.scenario import known_weakness_without_fencing

pytestmark = pytest.mark.cluster


def _run(scenario, fault_factory, node_of_rsc=None, settle=False):
    scenario.start_probes()
    scenario.baseline()
    fault = fault_factory()
    if settle:
        # Behind HAProxy the outage may only begin when Pacemaker restarts the daemon (a
        # starting API accepts connections it cannot serve yet): judge the clients once the
        # restart is over, not by the good answers before it (seen on os-aa-2node). Counted as
        # the recovery wait it is (the time breakdown showed it as the test body's own time)
        with scenario.phase("recovery_wait"):
            scenario.cluster.wait_settled(timeout=scenario.target_s)
    recovered = scenario.wait_recovered(since=fault.started_at + 0.5)
    fault.heal()
    result = scenario.analyse(fault, node=node_of_rsc)
    return recovered, result


def expect_serial_restart_of_control_plane(request, rsc, rid: str) -> None:
    """Active/passive: a resource every OpenStack service is ordered after (MariaDB, RabbitMQ,
    memcached in g_infra) takes them all down with it, and the group starts them again one
    after another. Measured in the os-ap-2node main job after `systemctl stop mariadb`: the
    dependents stopped in 33 s, the 14 starts took 79 s, cinder answered again after 122 s.
    The figure straddles the 120 s target on this 2-core host (mysql-sigkill and rabbitmq-stop
    recovered within it in the same run), so the expectation is not strict."""
    apis = {p.id for p in rsc.primitives if p.agent == "ocf:harness:openstack-api"}
    if apis and apis <= rsc.dependents(rid):
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            f"active/passive: a {rid} failure restarts every OpenStack service of the group one after "
            "another (stops ~33 s + serial starts ~79 s here): recovery at the edge of the 120 s target")))


@pytest.mark.parametrize("how", ["stop", "sigkill"])
def test_service_failure_is_recovered(request, scenario, cluster, managed_service, how):
    """`systemctl stop` / SIGKILL of a managed daemon: Pacemaker's monitor notices and recovers it."""
    rid, unit = managed_service
    node = cluster.state().where(rid)[0]
    # its own failure, and those of what depends on it (restarted with it by a constraint,
    # or an OpenStack service whose API fails while its database/queue is gone), are this
    # scenario's doing: the audit lists them as its consequences
    rsc = cluster.topology.resources
    scenario.expected_failures |= {rid, *rsc.dependents(rid), *rsc.runtime_clients(rid)}
    expect_serial_restart_of_control_plane(request, rsc, rid)
    service = scenario.nemesis.service(node, unit)

    recovered_by = []

    def act():
        fault = getattr(service, how)()
        # Pacemaker's monitor notices (a failed action, then a restart), unless systemd got
        # there first: Debian's OpenStack units have Restart=on-failure, so after a SIGKILL
        # the unit may be back with a new main process before any monitor ran
        def noticed():
            if any(f.resource == rid for f in cluster.state().failures):
                recovered_by.append("pacemaker")
            elif how == "sigkill" and fault.restarted_by_systemd():
                recovered_by.append("systemd Restart=")
            return bool(recovered_by), rid
        poll(noticed, 60, what=f"{rid} failure noticed")
        return fault
    recovered, result = _run(scenario, act, settle=True)
    print(f"{rid} {how}: recovered by {recovered_by[0]}")
    assert recovered, result["verdict"]["reasons"]
    assert cluster.state().where(rid), f"{rid} is not running again"
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


def _seconds(value, default: float) -> float:
    s = str(value or "").strip().lower()
    return float(s[:-1]) if s.endswith("s") else float(s) if s else default


def test_hung_service_is_noticed_and_recovered(request, scenario, cluster, hung_service):
    """Every process of a managed daemon SIGSTOPped: the PIDs live, the service answers nothing.
    Pacemaker's monitor must call that a failure within a few intervals and recover it."""
    rid, unit = hung_service
    rsc = cluster.topology.resources
    prim = next(p for p in rsc.primitives if p.id == rid)
    if prim.agent_class == "systemd":
        # seen on ha-2node: a systemd: resource's monitor asks systemd whether the unit is
        # active; a stopped (hung) process still is, so nothing ever notices the hang
        request.applymarker(pytest.mark.xfail(strict=True, reason=(
            "systemd-class resource: its monitor only asks whether the unit is active, which a hung "
            "daemon still is; an OCF agent that checks the service (ocf:harness:openstack-api) notices")))
    scenario.expected_failures |= {rid, *rsc.dependents(rid), *rsc.runtime_clients(rid)}
    expect_serial_restart_of_control_plane(request, rsc, rid)
    node = cluster.state().where(rid)[0]
    monitor = prim.op.get("monitor", {})
    notice_s = 3 * _seconds(monitor.get("interval"), 10) + _seconds(monitor.get("timeout"), 20)

    def act():
        fault = scenario.nemesis.service(node, unit).hang()
        poll(lambda: (any(f.resource == rid for f in cluster.state().failures), rid), notice_s,
             what=f"Pacemaker noticing that {rid} hangs on {node} (3 monitor intervals + its timeout)")
        return fault
    recovered, result = _run(scenario, act, settle=True)
    assert recovered, result["verdict"]["reasons"]
    assert cluster.state().where(rid), f"{rid} is not running again"
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


def test_corosync_killed_on_vip_holder(request, scenario, cluster):
    """SIGKILL of corosync on the active node: pacemaker there loses its membership, the
    other node takes over; only one node may hold the VIP."""
    # seen on ha-2node: the node whose corosync died keeps its VIP up (its pacemaker dies
    # without stopping resources) while the survivor starts its own copy
    known_weakness_without_fencing(request, cluster, "the node that lost corosync keeps its resources "
                                                     "while the survivor starts them")
    holder = cluster.vip_holder()
    survivors = [n for n in cluster.node_names if n != holder]
    vip = cluster.vip_resource("public")

    def taken_over():
        # asked of a survivor: the holder's own view died with its corosync; on 3 nodes either
        # survivor may take the VIP
        where = cluster.state(node=survivors[0]).where(vip)
        return any(n in where for n in survivors), where

    def kill_and_await_takeover():
        fault = scenario.nemesis.service(holder, "corosync").sigkill()
        # judge once a survivor has taken over: the clients see nothing until then, and a heal
        # after 8 good samples restarted corosync 0.3 s after the survivor noticed the loss
        # (CI, ha-2node), before it could act: the scenario then tested nothing
        poll(taken_over, scenario.target_s, what=f"a survivor running {vip} after corosync died on {holder}")
        return fault

    recovered, result = _run(scenario, kill_and_await_takeover, holder)
    assert recovered, result["verdict"]["reasons"]
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
    assert result["vip"]["public"]["max_holders"] <= 1, "the VIP was up on two nodes at once"


def test_monitor_failure_of_vip_resource(request, scenario, cluster):
    rid = cluster.vip_resource("public")
    holder = cluster.vip_holder()
    rsc = cluster.topology.resources
    scenario.expected_failures |= {rid, *rsc.dependents(rid)}
    # active/passive: the VIP heads the group, its recovery restarts every service after it
    # (os-ap-2node, fresh clone f579324: cinder answered again after 121 s, logins after 128 s;
    # passed in earlier runs)
    expect_serial_restart_of_control_plane(request, rsc, rid)
    recovered, result = _run(scenario, lambda: scenario.nemesis.fail_resource(rid, holder))
    assert recovered, result["verdict"]["reasons"]
    assert result["verdict"]["passed"], result["verdict"]["reasons"]


def test_packet_loss_does_not_cause_failover(request, scenario, cluster):
    """10 % loss on the active node's cluster traffic for 20 s: knet retransmits, the
    membership holds, and the VIP must not move."""
    if cluster.topology.corosync.token <= 1000:
        # A finding of the topology, not of the test: seen in CI on ha-2node, a 10 % loss broke
        # the membership (token 1000 ms), the VIP moved and was on both nodes, clients lost
        # 15.75 s. A longer token trades slower failover for this.
        request.applymarker(pytest.mark.xfail(reason="corosync token 1000 ms: 10 % packet loss can break "
                                                     "the membership and move the VIP", strict=False))
    holder = cluster.vip_holder()
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.packet_loss(holder, 0.10) as fault:
        time.sleep(20)
    scenario.wait_recovered(since=fault.healed_at)
    result = scenario.analyse(fault, node=holder)
    assert cluster.vip_holder() == holder, "a 10 % packet loss made the VIP move"
    assert result["vip"]["public"]["move_s"] is None
    assert result["verdict"]["passed"], result["verdict"]["reasons"]
