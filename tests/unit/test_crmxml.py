from pathlib import Path

from harness import crmxml

DATA = Path(__file__).parent / "data"


def test_parse_real_crm_mon_output():
    s = crmxml.parse_crm_mon((DATA / "crm_mon_2node.xml").read_text())
    assert s.dc == "node1" and s.quorum
    assert s.online == ["node1", "node2"]
    assert s.where("vip") == ["node1"] and s.where("web") == ["node1"]
    assert s.resources["vip"][0].parent == "g_public"
    assert not s.failures and not s.active_twice() and not s.stopped()


def test_parse_failures_clones_and_fail_counts():
    s = crmxml.parse_crm_mon((DATA / "crm_mon_failed_clone.xml").read_text())
    assert s.failures, "the captured output has a failed action"
    f = s.failures[0]
    assert f.resource == "web" and f.op in ("monitor", "asyncmon") and f.exitcode != 0
    assert any(count > 0 for count in s.fail_counts.values())
    clone = [r for insts in s.resources.values() for r in insts if r.clone]
    assert clone and len({n for r in clone for n in r.nodes}) == 2
    assert not s.active_twice()       # clone instances on two nodes are not "active twice"


def test_a_joining_node_is_pending_not_in_standby():
    # Pacemaker 2.1.5 flags a node whose controller has not finished joining standby and pending
    # (os-ap-2node, 2026-12-01: 1 s after a fenced node booted, the heal check saw it "in standby")
    xml = (DATA / "crm_mon_2node.xml").read_text()
    joining = xml.replace('standby="false"', 'standby="true"', 2).replace('pending="false"', 'pending="true"', 2)
    s = crmxml.parse_crm_mon(joining)
    assert all(n.pending and not n.standby for n in s.nodes.values())
    operator = xml.replace('standby="false"', 'standby="true"', 1)
    assert crmxml.parse_crm_mon(operator).nodes["node1"].standby


def test_active_twice_detects_a_primitive_on_two_nodes():
    xml = (DATA / "crm_mon_2node.xml").read_text().replace(
        '<node name="node1" id="1" cached="true"/>\n      </resource>\n      <resource id="web"',
        '<node name="node1" id="1" cached="true"/><node name="node2" id="2" cached="true"/>\n'
        '      </resource>\n      <resource id="web"', 1)
    assert crmxml.parse_crm_mon(xml).active_twice() == ["vip"]


def test_cib_digest_ignores_status_and_num_updates():
    a = '<cib admin_epoch="0" epoch="5" num_updates="3"><configuration><x a="1"/></configuration><status/></cib>'
    b = '<cib admin_epoch="0" epoch="5" num_updates="9"><configuration>\n  <x a="1"/>\n</configuration><status><y/></status></cib>'
    va, vb = crmxml.parse_cib_version(a), crmxml.parse_cib_version(b)
    assert va.config_digest == vb.config_digest and (va.epoch, vb.num_updates) == (5, 9)
    c = a.replace('a="1"', 'a="2"')
    assert crmxml.parse_cib_version(c).config_digest != va.config_digest


def test_a_failures_rc_change_is_read_as_utc_epoch():
    # crm_mon 2.1.5: last-rc-change="2026-12-02 06:22:44Z"
    assert crmxml.rc_change_wall("2026-12-02 06:22:44Z") == 1796192564.0
    assert crmxml.rc_change_wall("Wed Dec  2 06:22:44 2026") is None
    assert crmxml.rc_change_wall("") is None


def test_a_queued_fencing_is_pending_though_its_target_reads_clean():
    # node1's view on TCG VMs, 2026-12-02: node2 already rebooted (clean), the cluster's own off queued
    history = ('<fence_history><fence_event action="off" target="node2" client="pacemaker-controld.438" '
               'origin="node1" status="pending"/><fence_event action="reboot" target="node2" '
               'client="stonith_admin.2612" origin="node1" status="success" completed="2026-12-02 06:00:49Z"/>'
               '</fence_history></pacemaker-result>')
    xml = (DATA / "crm_mon_2node.xml").read_text().replace("</pacemaker-result>", history)
    s = crmxml.parse_crm_mon(xml)
    assert s.pending_fencing == [("off", "node2")]
    assert not crmxml.parse_crm_mon((DATA / "crm_mon_2node.xml").read_text()).pending_fencing
