"""Writes during a failover: while a fault runs, clients keep creating and deleting Keystone
projects, Glance images, Cinder volumes and Nova servers through the VIP, and a database
client inserts numbered rows through the VIP's database port. After recovery the read-back
must hold every acknowledged write, nothing acknowledged as deleted, no object stuck in a
transitional state past the target, no duplicates (harness.writes.check)."""

import time

import pytest

from harness import checkers
from harness.openstack.writers import Writers
from harness.writes import operations
from harness.scenario import known_weakness_without_fencing

pytestmark = [pytest.mark.cluster, pytest.mark.openstack]


def db_unit(cluster) -> str | None:
    spec = cluster.topology.openstack
    return "mariadb.service" if spec.database == "mariadb" else None


FAULTS = {
    "node-kill": lambda sc, node: sc.nemesis.node(node).kill(),
    "node-freeze": lambda sc, node: sc.nemesis.node(node).freeze(),
    "db-kill": lambda sc, node: sc.nemesis.service(node, "mariadb.service").sigkill(),
    "mq-kill": lambda sc, node: sc.nemesis.service(node, "rabbitmq-server.service").sigkill(),
    "partition": lambda sc, node: sc.nemesis.isolate(node),
}


def run_writes(scenario, cluster, cp, tag: str, interval: float, fault_fn=None):
    """Writers on (each every `interval` s, --write-interval), then the fault, its recovery
    and heal, then a few more writes; returns the writers and the fault."""
    writers = Writers(cp, scenario.history, tag, interval=interval)
    try:
        writers.start()
        scenario.start_probes()
        paced_baseline(scenario, writers)
        fault = None
        if fault_fn is not None:
            fault = fault_fn()
            scenario.wait_recovered(since=fault.started_at)
            fault.heal()
            # the lost node is a member again; its services may need minutes more to start (on
            # os-aa-2node every API clone restarts on it one at a time: Pacemaker throttles at
            # load 14-22 on 2 cores, 60 s per API): waiting for that is the post-scenario
            # settle's job, not the writes' (a 300 s wait here failed the node kill, 2026-12-01)
            cluster.wait_formed(timeout=180)
        time.sleep(4 * writers.interval)         # writes after recovery must work too
        if fault is not None:
            # a fault's effect can come late (a broker SIGKILLed on os-ap-2node: Pacemaker's
            # monitor notices 10 s later and restarts the group after it, after the clients had
            # already answered 8 times): the read-back needs answering APIs again
            scenario.wait_recovered(since=scenario.history.now())
    finally:
        writers.stop()
    return writers, fault


SATURATED_SHARE = 0.5      # of the baseline's host samples at >= 95 % busy


def paced_baseline(scenario, writers, slowdowns: int = 2) -> None:
    """The clients must answer steadily under the writers before the fault. When they do not
    and the host's CPU was saturated meanwhile, the writers' pace is more than this host
    serves (seen on os-aa-2node, 2 cores: no 6 steady password logins in 96 s): they slow to
    half, at most `slowdowns` times, each step a note in the history. A baseline that fails
    on an idle host, or after the last slowdown, fails the scenario as before."""
    for step in range(slowdowns + 1):
        since = scenario.history.now()
        try:
            scenario.baseline(seconds=2 * writers.interval)
            return
        except TimeoutError as e:
            samples = [h for h in scenario.history.events("host") if h["t"] >= since]
            host = checkers.host_load(samples, [], since) or {}
            window = len(samples) or 1
            saturated = checkers.saturated_throughout(samples, SATURATED_SHARE) is not None
            if step == slowdowns or not saturated:
                raise TimeoutError(f"{e} (host CPU busy mean {host.get('busy_mean', 0):.0%}, "
                                   f"saturated {host.get('saturated_s', 0)} of {window} s; writers every "
                                   f"{writers.interval:g} s)") from None
            old = writers.interval
            scenario.history.record("note", text=f"baseline not steady with the host CPU saturated "
                                                 f"({host['saturated_s']} of {window} s at >= 95%): writers slowed "
                                                 f"from every {old:g} s to every {writers.slow_down():g} s")


def judge(scenario, writers, fault, node):
    result = scenario.analyse(fault, node=node) if fault is not None else None
    cost = writers.cost()
    try:
        verdict = writers.verdict(scenario.target_s)
    except Exception as e:
        # nothing can be checked while the control plane does not answer (without fencing, a
        # frozen node keeps the shared-disk database): said as the scenario's failure
        acked = sum(1 for o in operations(scenario.history) if o.outcome == "ok")
        why = f"{type(e).__name__}: {str(e)[:200]}"
        if result is not None:
            result["writes"] = {"readback_failed": why, "acknowledged": acked, "interval_s": writers.interval,
                                "cost": cost}
        raise AssertionError(f"read-back impossible, the control plane did not answer after the heal ({why}): "
                             f"{acked} acknowledged writes could not be checked") from e
    if result is not None:
        result["writes"] = {**verdict.to_dict(), "interval_s": writers.interval, "cost": cost}
    print(f"writes (each writer every {writers.interval} s): {verdict.line()}")
    print(f"    cost: {cost['calls']} calls in {cost['wall_s']} s ({cost['calls_per_s']}/s), "
          f"client CPU {cost['client_cpu_s']} s ({cost['client_cpu_share']} of a core)")
    for p in verdict.problems:
        print(f"    {p['type']}: {p['obj']} {p['key']} id={p['id']} state={p['state']}: {p['reason']}")
    left = writers.cleanup()
    if left:
        print(f"    objects the writers left that could not be deleted: {left}")
    return verdict


@pytest.mark.parametrize("kind", list(FAULTS))
def test_acknowledged_writes_survive_a_failover(request, scenario, cluster, cluster_run, write_interval, kind):
    cp = cluster_run.provisioner.control_plane
    holder = cluster.vip_holder()
    if kind == "db-kill" and db_unit(cluster) is None:
        pytest.skip("Galera: the database is not one unit on the VIP holder (see the galera scenarios)")
    if kind in ("node-freeze", "partition") and cluster.topology.shared_volumes:
        known_weakness_without_fencing(request, cluster, "the frozen or cut-off node keeps the shared-disk "
                                                         "database and blocks the failover")
    if kind == "mq-kill" and not cluster.topology.openstack.rabbitmq_cluster:
        # Measured on os-ap-2node (2026-12-01): a volume stayed "creating" and a server "BUILD"
        # 138 s after their create was accepted: the API answered, then the cast to the scheduler
        # or conductor died with the only broker's queues. Not strict: it needs a create in flight.
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            "one RabbitMQ, no mirror: a create accepted while the broker dies stays in BUILD/creating "
            "(its message is lost with the broker)")))
    if kind == "node-kill" and not cluster.topology.openstack.rabbitmq_cluster:
        # Measured on os-ap-2node (main job from a fresh clone at 4a2e4a1, 2026-12-01): a server
        # create answered 0.8 s before the active node was killed stayed BUILD for good (166 s
        # after the last write; 418 acknowledged, 0 lost): its build message died with the only
        # broker and the conductor, and Nova's instance_build_timeout is 0 (never) by default.
        # Not strict: it needs a create in flight (the runs before passed).
        # The final re-run (262c24a) stranded a volume (creating) and a server (BUILD) alike.
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            "one RabbitMQ on the active node: a server or volume accepted just before that node dies stays "
            "in BUILD/creating (its message dies with the broker; Nova's instance_build_timeout is off "
            "by default)")))
    if kind == "db-kill":
        # Measured on os-ap-2node (fresh clone f579324, 2026-12-01): a server create answered
        # 0.26 s before MariaDB was SIGKILLed stayed BUILD for good; nova-compute could not
        # record the build's failure while the database was away ("Original exception being
        # dropped", DBConnectionError). Not strict: it needs a create in flight (the runs before
        # passed).
        request.applymarker(pytest.mark.xfail(strict=False, reason=(
            "one MariaDB: a server accepted just before the database dies can stay in BUILD "
            "(nova-compute cannot record the failed build while the database is away)")))
    if kind != "node-kill":
        scenario.expected_failures.update(p.id for p in cluster.topology.resources.primitives)
    writers, fault = run_writes(scenario, cluster, cp, kind, write_interval, lambda: FAULTS[kind](scenario, holder))
    verdict = judge(scenario, writers, fault, holder)
    assert verdict.acknowledged > 0, "no write was acknowledged at all: the writers never worked"
    assert verdict.passed, "; ".join(f"{p['type']} {p['obj']} {p['key']} ({p['state']})" for p in verdict.problems
                                     if p["type"] in ("lost", "stuck", "duplicate", "resurrected", "count"))


def test_a_write_removed_behind_the_harness_is_reported_lost(scenario, cluster, cluster_run, write_interval):
    """The checker's own proof on a real cluster: rows and a project acknowledged to the
    writers, then deleted directly in the database; the read-back must call them lost."""
    cp = cluster_run.provisioner.control_plane
    writers, _ = run_writes(scenario, cluster, cp, "removed", write_interval)
    ops = operations(scenario.history)
    acked_rows = [o.key for o in ops if o.obj == "row" and o.outcome == "ok"]
    deleted = {o.key for o in ops if o.obj == "project" and o.op == "delete"}
    acked_projects = [o.key for o in ops if o.obj == "project" and o.op == "create" and o.outcome == "ok"
                      and o.key not in deleted]
    assert len(acked_rows) >= 2 and acked_projects, "the writers got too few acknowledgements to test"
    row, project = acked_rows[1], acked_projects[-1]
    holder = cluster.vip_holder()
    cluster.backend.exec(holder, ["mysql", "-e", f"DELETE FROM harness_writes.hw_rows WHERE n={int(row)} "
                                                 f"AND tag='{writers.tag}'; "
                                                 f"DELETE FROM keystone.project WHERE name='{project}'"])
    verdict = judge(scenario, writers, None, None)
    lost = {(p["obj"], str(p["key"])) for p in verdict.problems if p["type"] == "lost"}
    assert ("row", str(row)) in lost and ("project", project) in lost, verdict.problems
