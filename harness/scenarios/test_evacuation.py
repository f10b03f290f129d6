"""Instance HA: a compute node is lost; how long until each of its instances runs again
elsewhere, and which stage took the time. Masakari (hostmonitor -> API -> engine) does the
recovery; the harness only watches Nova and Masakari (harness.evacwatch) and judges the
history afterwards (harness.evacuation)."""

import time

import pytest

from harness import checkers, evacuation
from harness.cluster import NotSettled, poll
from harness.evacwatch import EvacuationWatcher
from harness.openstack.instances import wait_computes_up
from harness.scenario import known_weakness_without_fencing

pytestmark = [pytest.mark.cluster, pytest.mark.openstack]

WATCH_INTERVAL_S = 2.0
REJOIN_S = 600          # a lost node's return until every resource runs on it again
SATURATED_SHARE = 0.9   # of a scenario's host samples at >= 95 % busy: no CPU to spare


def expected_miss(request, ih, target_s: float) -> None:
    """Masakari's engine sleeps `wait_period_after_service_update` after disabling the lost
    host's service, before any evacuation: a wait at or past the target misses it by
    design of the configuration, not by a fault of the run. Strict: if it ever recovers
    within the target anyway, that shows. Only the verdict's assertion is expected: any other
    error (a wait of the harness that timed out) still fails the scenario."""
    if ih.wait_period_after_service_update >= target_s:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
            f"masakari-engine waits wait_period_after_service_update={ih.wait_period_after_service_update} s "
            f"after disabling the service before it evacuates: past the {target_s:.0f} s target "
            f"(hostmonitor polls every {ih.monitoring_interval} s on top)")))


def watch_budget(ih, target_s: float) -> float:
    """How long to wait for the evacuation: every configured wait, plus the target for the
    rest (an evacuation that outlasts it is reported as lost, with its stuck state)."""
    return ih.monitoring_interval + ih.wait_period_after_service_update + ih.service_down_time + target_s


def run_node_loss(scenario, cluster, cp, instances, victim, fault_fn) -> tuple[evacuation.EvacuationVerdict, str]:
    """The fault, the evacuation watched, the node's return; (verdict, what of the return
    failed, or "")."""
    ih = cp.spec.instance_ha
    names = {i: v["name"] for i, v in instances.items()}
    on_victim = [i for i, v in instances.items() if v["host"] == victim]
    assert on_victim, f"no instance was placed on {victim}"
    scenario.start_probes()
    scenario.baseline()
    watcher = EvacuationWatcher(cp.connect, scenario.history, names, cp.compute_hosts(), WATCH_INTERVAL_S)
    with watcher:
        watcher.wait_polls(2)                      # where every instance was before the fault
        fault = fault_fn(victim)
        budget = watch_budget(ih, scenario.target_s)

        def evacuated():
            v = evacuation.check(scenario.history, victim, fault.started_at, scenario.target_s)
            return len(v.times) == len(on_victim), v.line()
        try:
            with scenario.phase("recovery_wait"):
                poll(evacuated, budget, interval=WATCH_INTERVAL_S, what=f"{victim}'s instances evacuated")
        except NotSettled:
            pass                                   # the verdict below names what is stuck
        fault.heal()
        # the node's return: its clones start one after another, nova-compute among the last
        # (os-ih-3node on 2 cores: 5m41s from its rejoin to the last start). One that does not
        # settle still gets the evacuation analysed (duplicates not judged: no settled_at)
        settled_at, unreturned = None, ""
        try:
            cluster.wait_settled(timeout=REJOIN_S)
        except NotSettled as e:
            unreturned = f"{victim}'s return: {e}"
        if not unreturned:
            conn = cp.connect()
            try:
                wait_computes_up(conn, [victim], timeout=max(120.0, 6 * ih.report_interval), enabled=False)
            finally:
                conn.close()
            # a few of its reports more: time to have destroyed its copies (migration -> completed)
            time.sleep(3 * ih.report_interval + 2 * WATCH_INTERVAL_S)
            settled_at = scenario.history.now() - 2 * WATCH_INTERVAL_S
    result = scenario.analyse(fault, node=victim)
    verdict = evacuation.check(scenario.history, victim, fault.started_at, scenario.target_s,
                               settled_at=settled_at)
    result["evacuation"] = verdict.to_dict()
    result["evacuation"]["watch_interval_s"] = WATCH_INTERVAL_S
    print(f"evacuation (watch interval {WATCH_INTERVAL_S} s): {verdict.line()}")
    for name, stages in evacuation.bars(verdict):
        print(f"    {name}: " + ", ".join(f"{stage} +{t:.1f}s" for stage, t in stages))
    if unreturned:
        print(unreturned)
    return verdict, unreturned


NODE_FAULTS = {
    # a power cut: the node and everything on it gone at once
    "kill": lambda nemesis, node: nemesis.node(node).kill(),
    # the node stops dead and comes back as it was (its nova-compute never restarts)
    "freeze": lambda nemesis, node: nemesis.node(node).freeze(),
    # cut off from the cluster network (corosync, RabbitMQ, the database) but running
    "isolate": lambda nemesis, node: nemesis.isolate(node),
}


@pytest.mark.instance_ha
@pytest.mark.parametrize("fault_kind", list(NODE_FAULTS))
@pytest.mark.parametrize("which", ["other-node", "vip-holder"])
def test_lost_compute_node_instances_are_evacuated(request, scenario, cluster, cluster_run, instances,
                                                   which, fault_kind):
    """A node is lost (killed, frozen or cut off): its instances must be ACTIVE on a survivor,
    their evacuation done, within the target; none lost, and none left running on the node
    when it is back (Nova's migration record says whether the source destroyed its copy).
    `vip-holder` loses the control plane's VIP, database and an engine too."""
    cp = cluster_run.provisioner.control_plane
    expected_miss(request, cp.spec.instance_ha, scenario.target_s)
    holder = cluster.vip_holder()
    victim = holder if which == "vip-holder" else next(n for n in cluster.node_names if n != holder)
    if fault_kind != "kill":
        # Nobody powers the frozen or cut-off node off: it comes back with its nova-compute
        # never restarted, still running the instances Masakari evacuated (and on 2 nodes a cut
        # is a split brain: both halves run the VIP and the shared-disk database)
        known_weakness_without_fencing(request, cluster, "a lost node that was not fenced comes back "
                                                         "still running the instances evacuated from it")
        # failed monitors on the survivors while the node is away are this fault's doing
        scenario.expected_failures.update(p.id for p in cluster.topology.resources.primitives)
    verdict, unreturned = run_node_loss(scenario, cluster, cp, instances, victim,
                                        lambda node: NODE_FAULTS[fault_kind](scenario.nemesis, node))
    if not verdict.passed or unreturned:
        # Seen on os-ih-3node-tuned (ha-3node main job, 2 cores): the VIP holder killed, its
        # instances ACTIVE elsewhere after 185-211 s, its return unsettled after 600 s (each API
        # start 47-168 s); the host was saturated 1274 of 1312 s. Judged only on a host that had
        # CPU to spare: below SATURATED_SHARE the scenario fails.
        if why := checkers.saturated_throughout(scenario.history.events("host"), SATURATED_SHARE):
            pytest.xfail(f"the host, not the cluster: {why}: " + "; ".join(
                [*([] if verdict.passed else [verdict.line()]), *([unreturned] if unreturned else [])]))
    assert not unreturned, unreturned
    assert verdict.passed, "; ".join(verdict.problems()) or verdict.line()


@pytest.mark.instance_ha
def test_nova_compute_killed_alone_does_not_evacuate(scenario, cluster, cluster_run, instances):
    """Only nova-compute dies (the node, its cluster membership and its instances live on):
    Pacemaker restarts it, and Masakari must not evacuate anything."""
    cp = cluster_run.provisioner.control_plane
    ih = cp.spec.instance_ha
    holder = cluster.vip_holder()
    victim = next(n for n in cluster.node_names if n != holder)
    names = {i: v["name"] for i, v in instances.items()}
    scenario.start_probes()
    scenario.baseline()
    with EvacuationWatcher(cp.connect, scenario.history, names, cp.compute_hosts(), WATCH_INTERVAL_S) as watcher:
        watcher.wait_polls(2)
        fault = scenario.nemesis.service(victim, "nova-compute.service").sigkill()
        scenario.expected_failures.add("nova-compute")
        # long enough for hostmonitor to have looked twice and the engine to have acted
        time.sleep(2 * ih.monitoring_interval + WATCH_INTERVAL_S * 3)
        fault.heal()
    scenario.analyse(fault, node=victim)
    moved = evacuation.stay_put(scenario.history, victim, fault.started_at)
    assert not moved, f"instances left a live node after only nova-compute died: {moved}"


@pytest.mark.shared_compute
def test_shared_compute_identity_after_its_node_is_lost(request, scenario, cluster, cluster_run, instances):
    """The seeds' layout: one nova-compute (host=harness-compute) runs with the VIP and starts on
    the survivor under the same name when its node dies. Nothing evacuates (the host is up
    again); the instances must run again within the target for the layout to protect them.
    What Nova shows of them, and when it changes, is the measurement."""
    # Measured on os-ap-2node (2026-12-01): the instances died with their node (the fake driver
    # keeps them in memory, as a hypervisor keeps VMs in its RAM) and the nova-compute started on
    # the survivor does not start them again; from +76 s Nova shows them ACTIVE with power state
    # NOSTATE; in the next full run (f579324) Nova never touched their records within the target
    # and kept showing ACTIVE/RUNNING from before the fault. Strict: a layout that restarts them
    # (resume_guests_state_on_host_boot with shared storage) would show as XPASS.
    request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
        "shared host= layout: the instances die with their node and the moved nova-compute does not "
        "restart them (Nova then shows ACTIVE, power state NOSTATE, or its record from before the "
        "fault, never re-read)")))
    cp = cluster_run.provisioner.control_plane
    host = cp.compute_hosts()[0]
    holder = cluster.vip_holder()
    names = {i: v["name"] for i, v in instances.items()}
    scenario.start_probes()
    scenario.baseline()
    with EvacuationWatcher(cp.connect, scenario.history, names, [host], WATCH_INTERVAL_S) as watcher:
        watcher.wait_polls(2)
        fault = scenario.nemesis.node(holder).kill()
        with scenario.phase("recovery_wait"):
            conn = cp.connect()
            try:
                wait_computes_up(conn, [host], timeout=scenario.target_s)
            finally:
                conn.close()
            # the rest of the target: long enough for what Nova does at nova-compute's start
            time.sleep(max(0.0, scenario.target_s - (scenario.history.now() - fault.started_at)))
        fault.heal()
        cluster.wait_settled(timeout=300)
    result = scenario.analyse(fault, node=holder)
    rows = evacuation.shared_host_outcome(scenario.history, host, fault.started_at)
    result["shared_compute"] = rows
    for r in rows:
        changes = "; ".join(f"+{c['after_s']:.1f}s {c['status']}/{c['power_state']}" for c in r["changes"]) or "no change"
        print(f"    {r['name']}: now {r['status']}/{r['power_state']} on {r['host']} ({changes})")
    assert rows, f"no instance was on {host} when the fault began"
    # running = Nova says ACTIVE/RUNNING from a record it wrote after the node died; an untouched
    # record is its memory of before (seen: ACTIVE/RUNNING for the whole target, never re-read)
    down = [f"{r['name']}: {r['status']}/{r['power_state']}"
            + ("" if r["rewritten"] else " (Nova's record from before the fault, never written again)")
            for r in rows if (r["status"], r["power_state"]) != ("ACTIVE", "RUNNING") or not r["rewritten"]]
    assert not down, (f"{len(down)} of {len(rows)} instances not running {scenario.target_s:.0f} s after "
                      f"their node died: {down}")


@pytest.mark.instance_ha
def test_nowhere_to_evacuate_ends_clearly(scenario, cluster, cluster_run, instances):
    """Every other compute host is disabled, then a node dies: nothing can take its
    instances. That must end in a clear state within the watch budget (Masakari's
    notification finished or failed, every instance in a stable state it can be found in),
    not in instances hanging in a rebuild."""
    cp = cluster_run.provisioner.control_plane
    ih = cp.spec.instance_ha
    holder = cluster.vip_holder()
    victim = next(n for n in cluster.node_names if n != holder)
    others = [h for h in cp.compute_hosts() if h != victim]
    conn = cp.connect()
    try:
        for svc in conn.compute.services(binary="nova-compute"):
            if svc.host in others:
                conn.compute.disable_service(svc, svc.host, "nova-compute", disabled_reason="harness: nowhere to go")
    finally:
        conn.close()
    names = {i: v["name"] for i, v in instances.items()}
    scenario.start_probes()
    scenario.baseline()
    with EvacuationWatcher(cp.connect, scenario.history, names, cp.compute_hosts(), WATCH_INTERVAL_S) as watcher:
        watcher.wait_polls(2)
        fault = scenario.nemesis.node(victim).kill()

        def ended():
            done = [e for e in scenario.history.events(evacuation.STAGE, stage="notification finished")
                    if e["t"] >= fault.started_at and e.get("host") == victim]
            return bool(done), "no finished or failed notification yet"
        try:
            with scenario.phase("recovery_wait"):
                poll(ended, watch_budget(ih, scenario.target_s), interval=WATCH_INTERVAL_S,
                     what=f"Masakari's notification about {victim} to end")
        except NotSettled:
            pass
        watcher.wait_polls(3)                      # the instances' state after the notification ended
        fault.heal()
        cluster.wait_settled(timeout=300)
    scenario.analyse(fault, node=victim)
    verdict = evacuation.check(scenario.history, victim, fault.started_at, scenario.target_s)
    finished = [e for e in scenario.history.events(evacuation.STAGE, stage="notification finished")
                if e["t"] >= fault.started_at and e.get("host") == victim]
    ending = (f"{finished[0].get('status')} +{finished[0]['t'] - fault.started_at:.1f}s" if finished
              else "never ended")
    print(f"nowhere to evacuate: {verdict.line()}; notification: {ending}")
    for i in verdict.instances:
        print(f"    {i.name}: {i.state or 'recovered?'}")
    assert finished, f"Masakari's notification about {victim} never ended: the recovery hangs"
    busy = [i.name for i in verdict.instances if "task " in i.state or i.state.startswith(("REBUILD", "BUILD"))]
    assert not busy, f"instances left in a transitional state: {busy}"
    assert not verdict.times, "instances recovered although no host could take them"
