import json

from harness import clusterlog
from harness.checkers import recovery_stages
from harness.history import History


def entry(us: int, ident: str, message: str) -> str:
    return json.dumps({"__REALTIME_TIMESTAMP": str(us), "SYSLOG_IDENTIFIER": ident, "MESSAGE": message})


# journal lines as corosync 3.1.7 / Pacemaker 2.1.5 write them (from real runs of this harness)
JOURNAL = "\n".join([
    entry(1795253500000000, "corosync", "[TOTEM ] A processor failed, forming new configuration: token timed out "
                                        "(1000ms), waiting 1200ms for consensus."),
    entry(1795253501250000, "corosync", "[TOTEM ] A new membership (2.5) was formed. Members left: 1"),
    entry(1795253501300000, "pacemaker-controld", " notice: Node node1 state is now lost"),
    entry(1795253501400000, "pacemaker-schedulerd", " notice: Actions: Move       vip     ( node1 -> node2 )"),
    entry(1795253501400100, "pacemaker-schedulerd", " notice: Actions: Start      haproxy:1     ( node2 )"),
    entry(1795253501410000, "pacemaker-schedulerd", " notice: Calculated transition 7, saving inputs in "
                                                    "/var/lib/pacemaker/pengine/pe-input-6.bz2"),
    entry(1795253501420000, "pacemaker-controld", " notice: Initiating start operation vip_start_0 locally on node2"),
    entry(1795253501430000, "pacemaker-controld", " notice: Initiating monitor operation vip_monitor_0 on node3"),
    entry(1795253501440000, "pacemaker-controld", " notice: Result of probe operation for vip on node3: not running"),
    entry(1795253501530000, "pacemaker-controld", " notice: Result of start operation for vip on node2: ok"),
    entry(1795253501600000, "pacemaker-controld", " notice: Result of monitor operation for web on node2: ok"),
    entry(1795253501700000, "pacemaker-controld", " notice: Result of monitor operation for haproxy on node2: "
                                                  "not running (inactive)"),
    entry(1795253501800000, "pacemaker-controld", " notice: Transition 7 (Complete=7, Pending=0, Fired=0, Skipped=0, "
                                                  "Incomplete=0, Source=/var/lib/pacemaker/pengine/pe-input-6.bz2): "
                                                  "Complete"),
    entry(1795253501900000, "pacemaker-controld", " notice: State transition S_TRANSITION_ENGINE -> S_IDLE"),
    "not json",
])


def test_milestones_from_real_journal_lines():
    stages = [s.stage for s in clusterlog.parse_journal(JOURNAL, "node2")]
    assert stages == [
        "corosync: membership loss detected (token timed out (1000ms), waiting 1200ms for consensus)",
        "corosync: new membership, members left: 1",
        "pacemaker: node1 lost",
        "plan: Move vip (node1 -> node2)",
        "plan: Start haproxy (node2)",
        "transition 7 calculated",
        "vip start on node2 initiated",
        "vip start on node2: ok",
        "haproxy monitor on node2 failed: not running (inactive)",
        "transition 7 Complete (7 actions)",
    ]
    first = clusterlog.parse_journal(JOURNAL, "node2")[0]
    assert first.wall == 1795253500.0 and first.source == "corosync" and first.node == "node2"


def test_merge_drops_the_same_milestone_from_another_node():
    a = clusterlog.parse_journal(JOURNAL, "node2")
    b = [clusterlog.LogStage(s.wall + 0.01, "node3", s.source, s.stage) for s in a]
    merged = clusterlog.merge(a + b)
    assert [s.node for s in merged] == ["node2"] * len(a)
    later = clusterlog.LogStage(a[-1].wall + 30, "node3", "x", a[-1].stage)
    assert clusterlog.merge(a + [later])[-1] == later      # the same text much later is a new event


def test_journal_command_covers_the_window():
    cmd = clusterlog.journal_command(100.7, 200.2)
    assert "--since @100 " in cmd and "--until @201" in cmd and "-o json" in cmd


def test_recovery_stages_include_the_journal_milestones():
    h = History("t")
    h.t0_wall = 1795253490.0
    for s in clusterlog.merge(clusterlog.parse_journal(JOURNAL, "node2")):
        h.record("clusterlog", t=s.wall - h.t0_wall, node=s.node, source=s.source, stage=s.stage)
    stages = recovery_stages(h, since=9.0)
    assert stages[0] == {"t": 10.0, "after_s": 1.0, "stage": "[node2] corosync: membership loss detected "
                                                            "(token timed out (1000ms), waiting 1200ms for consensus)"}
    assert any(s["stage"] == "[node2] vip start on node2: ok" and s["after_s"] == 2.53 for s in stages)


def test_ports_in_exit_reasons_survive():
    msg = (" notice: Result of monitor operation for neutron on node2: error (neutron-api.service runs but "
           "its API at http://node2:9696/ does not answer)")
    assert clusterlog.stage_of(msg).endswith("at http://node2:9696/ does not answer)")
    assert clusterlog.stage_of(" notice: Initiating stop operation galera:2_stop_0 on node3") == \
        "galera stop on node3 initiated"


def test_throttling_for_high_load_is_a_milestone():
    assert clusterlog.stage_of(" notice: High CPU load detected: 4.090000") == \
        "pacemaker: throttling actions, CPU load 4.090000"
