"""Heal check and reset bookkeeping: pure parts."""
from harness import healcheck
from harness.crmxml import parse_constraint_ids
from harness.reset import ResetRecord
from harness.topology import Haproxy, Primitive, Resources


def test_clean_node_has_no_problems():
    values = healcheck.parse_node_probe("rules=0\nnetem=0\nstack=active,active,\nstopped=\n")
    assert healcheck.node_problems(values) == []


def test_each_leftover_is_named():
    values = healcheck.parse_node_probe("rules=2\nnetem=1\nstack=active,inactive,\nstopped=mysqld,\n")
    problems = healcheck.node_problems(values)
    assert problems == ["2 harness iptables rule(s) left", "a netem qdisc left",
                        "corosync/pacemaker not active (active,inactive)", "stopped (SIGSTOP) processes: mysqld"]


def test_unreadable_stack_state_is_a_problem():
    assert healcheck.node_problems({"rules": "0", "netem": "0"}) == ["corosync/pacemaker not active (unknown)"]


def test_constraint_ids_include_move_and_ban_leftovers():
    xml = """<constraints>
      <rsc_colocation id="col_a" rsc="a" with-rsc="b" score="INFINITY"/>
      <rsc_location id="cli-ban-vip-on-node1" rsc="vip" node="node1" score="-INFINITY"/>
      <rsc_location id="cli-prefer-vip" rsc="vip" node="node2" score="INFINITY"/>
      <rsc_order id="ord" first="a" then="b"/>
    </constraints>"""
    assert parse_constraint_ids(xml) == ["col_a", "cli-ban-vip-on-node1", "cli-prefer-vip", "ord"]


def test_haproxy_detection_is_fall_plus_one_checks():
    assert Haproxy("inter 2000 rise 2 fall 5").detection_s() == 12.0
    assert Haproxy("inter 1000 rise 2 fall 2").detection_s() == 3.0


def test_runtime_clients_of_the_database_are_the_openstack_services():
    rsc = Resources(primitives=(Primitive("mysql", "systemd:mariadb"), Primitive("vip", "ocf:heartbeat:IPaddr2"),
                                Primitive("keystone", "ocf:harness:openstack-api"),
                                Primitive("neutron", "ocf:harness:openstack-api")))
    assert rsc.runtime_clients("mysql") == {"keystone", "neutron"}
    assert rsc.runtime_clients("vip") == set()
    assert rsc.runtime_clients("keystone") == set()


def test_reset_line_names_the_step_that_worked():
    r = ResetRecord("t::a", "nodes offline: ['node2']", ["cleanup: NotSettled (91 s)", "restart nodes: ok (30 s)"],
                    121.4, True)
    assert r.line() == "cluster reset after t::a: nodes offline: ['node2']; healthy after restart nodes, took 121 s"
    failed = ResetRecord("t::a", "x", ["re-provision: boom (5 s)"], 5, False)
    assert "FAILED, the remaining scenarios are not run" in failed.line()


def test_report_lists_resets_with_their_steps():
    from harness.report.html import resets_section
    run = {"resets": [ResetRecord("t::split", "nodes offline: ['node2']",
                                  ["cleanup: NotSettled (60 s)", "restart nodes: ok (30 s)"], 95.0, True).to_dict()]}
    html = resets_section(run)
    assert "Cluster resets" in html and "t::split" in html and "restart nodes: ok (30 s)" in html
    assert resets_section({"resets": []}) == ""


def test_job_args_naming_tests_replace_the_scenario_directory():
    from pathlib import Path
    from harness.job import pytest_command
    from harness.job import SCENARIOS
    assert Path(SCENARIOS, "test_node_failures.py").is_file()
    assert SCENARIOS in pytest_command("ha-2node", Path("r"), ["-k", "kill"])
    cmd = pytest_command("os-ap-2node", Path("r"), ["@tests/cross-section.args"])
    assert SCENARIOS not in cmd and "@tests/cross-section.args" in cmd
    assert SCENARIOS not in pytest_command("x", Path("r"), ["harness/scenarios/test_node_failures.py::test_a"])


def test_rabbitmq_partition_handling_keeps_a_majority_or_autoheals():
    from harness.openstack import rabbitmq_partition_handling
    assert rabbitmq_partition_handling(2) == "autoheal"
    assert rabbitmq_partition_handling(3) == "pause_minority"


def test_losing_a_node_explains_failures_of_the_clients_of_what_it_ran():
    from types import SimpleNamespace
    from harness.crmxml import ClusterState, ResourceState
    from harness.scenario import Scenario

    def on(rid, agent, *nodes):
        return [ResourceState(rid, agent, "Started", True, False, True, tuple(nodes))]
    rsc = Resources(primitives=(Primitive("mysql", "systemd:mariadb"), Primitive("vip", "ocf:heartbeat:IPaddr2"),
                                Primitive("neutron", "ocf:harness:openstack-api")))
    state = ClusterState("node1", True, resources={"mysql": on("mysql", "systemd:mariadb", "node2"),
                                                   "neutron": on("neutron", "x", "node1", "node2")})
    cluster = SimpleNamespace(state=lambda: state, topology=SimpleNamespace(resources=rsc))
    nemesis = SimpleNamespace(before_node_loss=[])
    sc = Scenario("t", cluster, None, nemesis)
    nemesis.before_node_loss[0]("node1")        # runs neutron only: nothing it backs
    assert sc.expected_failures == set()
    nemesis.before_node_loss[0]("node2")        # runs the database: its clients may fail
    assert sc.expected_failures == {"neutron"}
