import copy
from pathlib import Path

import pytest
import yaml

from harness import topology
from harness.topology import TopologyError

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "harness/topologies/ha-2node.yaml").read_text())


def parse(mutate):
    data = copy.deepcopy(BASE)
    mutate(data)
    return topology.parse(data, "t.yaml")


def error_of(mutate) -> str:
    with pytest.raises(TopologyError) as e:
        parse(mutate)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("t.yaml: ")
    return msg


@pytest.mark.parametrize("name", ["ha-2node", "ha-3node"])
def test_shipped_topologies_load(name):
    t = topology.load(ROOT / f"harness/topologies/{name}.yaml")
    assert t.name == name
    assert t.corosync.two_node == (len(t.nodes) == 2)
    assert t.vip("public").ip.startswith(t.subnet.rsplit(".", 1)[0])


def test_unknown_key_names_key():
    assert "nodes[0].colour: unknown key" in error_of(lambda d: d["nodes"][0].update(colour="red"))
    assert "corosync.tokn: unknown key" in error_of(lambda d: d["corosync"].update(tokn=5))


def test_bad_ip():
    assert "nodes[1].ip: '10.213.10.300' is not a valid IPv4 address" in error_of(
        lambda d: d["nodes"][1].update(ip="10.213.10.300"))


def test_vip_outside_subnet():
    msg = error_of(lambda d: d["vips"][0].update(ip="192.168.7.1"))
    assert "vips[0].ip: 192.168.7.1 is outside subnet 10.213.10.0/24" in msg


def test_duplicate_node_name():
    assert "nodes[1].name: duplicate node name 'node1'" in error_of(
        lambda d: d["nodes"][1].update(name="node1"))


def test_fewer_than_two_nodes():
    assert "nodes: a cluster needs at least 2 nodes, got 1" in error_of(lambda d: d["nodes"].pop())


def test_unknown_agent_class():
    msg = error_of(lambda d: d["resources"]["primitives"][0].update(agent="heartbeat2:IPaddr2"))
    assert "resources.primitives[0].agent: unknown resource agent class 'heartbeat2'" in msg


def test_malformed_ocf_agent():
    assert "is malformed" in error_of(lambda d: d["resources"]["primitives"][0].update(agent="ocf:IPaddr2"))


def test_group_member_must_exist():
    assert "'nope' is not a primitive" in error_of(
        lambda d: d["resources"]["groups"][0]["members"].append("nope"))


def test_placeholder_must_name_a_vip():
    msg = error_of(lambda d: d["resources"]["primitives"][0]["params"].update(ip="${vip.private}"))
    assert "params.ip: ${vip.private} names no such vip" in msg


def test_two_node_needs_two_nodes():
    def three(d):
        d["nodes"].append({"name": "node3", "ip": "10.213.10.13"})
        d["corosync"]["two_node"] = True
    assert "corosync.two_node: two_node needs exactly 2 nodes" in error_of(three)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(TopologyError, match="no such topology file"):
        topology.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TopologyError, match=r"bad.yaml: line \d+: not valid YAML"):
        topology.load(bad)


def test_relocation_keeps_host_parts_and_expands_placeholders():
    t = parse(lambda d: None).relocated("10.213.77.0/24")
    assert [n.ip for n in t.nodes] == ["10.213.77.11", "10.213.77.12"]
    assert t.expand("${vip.public}/${vip.public.prefix} ${node.node2}") == "10.213.77.100/24 10.213.77.12"
    with pytest.raises(TopologyError):
        t.relocated("10.213.0.0/16")


def test_dependents_follow_groups_and_orders():
    t = topology.load(ROOT / "harness/topologies/os-ap-2node.yaml")
    deps = t.resources.dependents("mysql")
    assert {"rabbitmq", "memcached", "keystone", "cinder-volume"} <= deps
    assert "vip" not in deps and "mysql" not in deps
    assert t.resources.dependents("cinder-volume") == set()
    assert t.resources.dependents("nova-compute") == {"cinder-api", "cinder-scheduler", "cinder-volume"}


@pytest.mark.parametrize("name", ["os-ap-2node", "os-ap-3node", "os-aa-2node", "os-aa-3node", "ha-2node-slow"])
def test_shipped_openstack_topologies_load(name):
    t = topology.load(ROOT / f"harness/topologies/{name}.yaml")
    assert t.name == name
    if name.startswith("os-aa"):
        assert t.openstack.active_active and t.openstack.rabbitmq_cluster
        assert {f.port for f in t.haproxy.frontends} >= {5000, 9292, 8774, 8776, 8778}
    assert t.openstack is None or t.openstack.database == ("galera" if name == "os-aa-3node" else "mariadb")


def with_haproxy(frontends, **extra):
    def mutate(d):
        d["haproxy"] = {"frontends": frontends, **extra}
        d["image"] = {"layers": ["cluster", "openstack"]}
    return mutate


def test_haproxy_frontend_defaults_and_errors():
    t = parse(with_haproxy([{"name": "web", "vip": "public", "port": 80}]))
    f = t.haproxy.frontends[0]
    assert (f.mode, f.check_path, f.one_active, f.check_port, f.check) == ("http", "/", False, None, None)
    assert "haproxy.frontends[0].check_port: 'x' is not a TCP port" in error_of(
        with_haproxy([{"name": "db", "vip": "public", "port": 3306, "check_port": "x"}]))
    assert t.haproxy.check == "inter 2000 rise 2 fall 5"
    assert "haproxy.frontends[0].vip: 'nope' is not a vip" in error_of(
        with_haproxy([{"name": "web", "vip": "nope", "port": 80}]))
    assert "haproxy.frontends[0].mode: 'udp' is not http or tcp" in error_of(
        with_haproxy([{"name": "web", "vip": "public", "port": 80, "mode": "udp"}]))
    assert "haproxy.frontends[0].port: 70000 is not a TCP port" in error_of(
        with_haproxy([{"name": "web", "vip": "public", "port": 70000}]))
    assert "two frontends bind the same vip and port" in error_of(
        with_haproxy([{"name": "a", "vip": "public", "port": 80}, {"name": "b", "vip": "public", "port": 80}]))


def test_active_active_needs_haproxy_and_known_layout():
    def aa(layout):
        def mutate(d):
            d["openstack"] = {"vip": "public", "layout": layout, "identity": "web"}
            d["image"] = {"layers": ["cluster", "openstack"]}
        return mutate
    assert "openstack.layout: active-active needs a haproxy section" in error_of(aa("active-active"))
    assert "openstack.layout: 'hot-hot' is not active-passive or active-active" in error_of(aa("hot-hot"))


def test_mistakes_the_parser_used_to_accept():
    def two_vips_one_address(d):
        d["vips"].append({"name": "admin", "ip": d["vips"][0]["ip"]})
    assert "vips[1].ip: duplicate address 10.213.10.100" in error_of(two_vips_one_address)

    def member_of_two_groups(d):
        d["resources"]["groups"].append({"id": "g_other", "members": ["web"]})
    assert "resources.groups[1].members: 'web' is already a member of group 'g_public'" in error_of(member_of_two_groups)

    def fence_id(d):
        d["resources"]["primitives"][1]["id"] = "fence-nodes"
    assert "'fence-nodes' is reserved" in error_of(fence_id)

    def openstack_without_layer(d):
        d["openstack"] = {"vip": "public", "identity": "web"}
    assert "openstack: needs the openstack image layer" in error_of(openstack_without_layer)

    def fencing_and_property(d):
        d["fencing"] = {"device": "docker", "delay_max": 5}
        d["properties"] = {"stonith-timeout": "20s"}
    assert "properties.stonith-timeout: is set by the fencing section" in error_of(fencing_and_property)

    assert "haproxy.frontends[0].one_active: 'no' must be true or false" in error_of(
        with_haproxy([{"name": "db", "vip": "public", "port": 3306, "mode": "tcp", "one_active": "no"}]))


def test_topology_resolves_the_users_file_or_directory_before_shipped_names(tmp_path):
    from harness.topology import SHIPPED, TopologyError, resolve
    (tmp_path / "mine.yaml").write_text("name: mine\n")
    assert resolve("mine.yaml", tmp_path) == tmp_path / "mine.yaml"
    one = tmp_path / "one"
    one.mkdir()
    (one / "cluster.yml").write_text("name: x\n")
    assert resolve("one", tmp_path) == one / "cluster.yml"
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "ha-2node.yaml").write_text("name: ha-2node\n")
    assert resolve("ha-2node", tmp_path) == tmp_path / "topologies" / "ha-2node.yaml"
    assert resolve("os-aa-2node", tmp_path) == SHIPPED / "os-aa-2node.yaml"
    (one / "b.yaml").write_text("name: b\n")
    with pytest.raises(TopologyError, match=r"^one: a directory with 2 topology files \(b.yaml, cluster.yml\)"):
        resolve("one", tmp_path)
    with pytest.raises(TopologyError, match=r"^missing.yaml: no such topology file$"):
        resolve("missing.yaml", tmp_path)
    with pytest.raises(TopologyError, match=r"^unknown topology 'nope': .*shipped topologies \(ha-2node, "):
        resolve("nope", tmp_path)


def test_fencing_section_enables_stonith_and_settles_the_two_node_race():
    t = topology.load_named("ha-2node")
    assert t.fencing.device == "docker" and t.fencing.priority_delay == 5 and t.fencing.delay_max == 0
    assert t.properties["stonith-enabled"] == "true" and t.properties["stonith-timeout"] == "60s"
    assert t.properties["priority-fencing-delay"] == "5s" and t.rsc_defaults["priority"] == "1"
    from harness import provision
    cib = provision.render_cib(t, fence=("stonith:fence_docker", {"ip": "10.213.15.1",
                                                                  "pcmk_host_map": "node1:c1;node2:c2"}))
    assert ("primitive fence-nodes stonith:fence_docker params ip=10.213.15.1 pcmk_host_map='node1:c1;node2:c2' "
            "op start timeout=60s op monitor interval=60s timeout=60s") in cib     # fencing.timeout
    assert "priority-fencing-delay=5s" in cib and "priority=1" in cib


@pytest.mark.parametrize("fencing, props, message", [
    ({"device": "docker"}, {}, r"^<t>: fencing: a 2-node cluster needs delay_max or priority_delay"),
    ({"device": "ipmi", "delay_max": 5}, {}, r"fencing.device: 'ipmi' is not supported \(docker\)"),
    ({"device": "docker", "delay_max": -1}, {}, r"fencing.delay_max: -1 must be a whole number of seconds >= 0"),
    ({"device": "docker", "priority_delay": 5}, {},
     r"^<t>: fencing.priority_delay: needs resources with a priority \(rsc_defaults: \{priority: 1\}\)"),
    ({"device": "docker", "delay_max": 5}, {"stonith-enabled": False},
     r"properties.stonith-enabled: contradicts the fencing section"),
])
def test_fencing_section_errors_are_one_line(fencing, props, message):
    data = copy.deepcopy(BASE)
    data["properties"] = {**{k: v for k, v in data["properties"].items() if k != "stonith-enabled"}, **props}
    data["fencing"] = fencing
    data["rsc_defaults"] = {k: v for k, v in data["rsc_defaults"].items() if k != "priority"}
    with pytest.raises(TopologyError, match=message):
        topology.parse(data, "<t>")


def test_the_cli_lists_and_prints_shipped_topologies(capsys):
    from harness import cli
    cli.main(["topologies"])
    listed = capsys.readouterr().out.split("\n")
    assert any(line.startswith("os-aa-2node ") for line in listed)
    cli.main(["topologies", "ha-2node"])
    printed = capsys.readouterr().out
    assert topology.parse(yaml.safe_load(printed)).name == "ha-2node"   # a valid starting point
    with pytest.raises(SystemExit) as e:
        cli.main(["topologies", "nope"])
    assert e.value.code == 2 and "no shipped topology" in capsys.readouterr().err


def test_quorum_device_replaces_two_node_and_moves_with_the_subnet():
    t = topology.load(ROOT / "harness/topologies/ha-2node-qdevice.yaml")
    assert t.corosync.qdevice == topology.QDevice("10.213.16.5", "ffsplit") and not t.corosync.two_node
    assert t.fencing.delay_max == 0          # no fence race to settle with the device's vote
    from harness import provision
    conf = provision.render_corosync_conf(t, "r1")
    assert "two_node" not in conf and "host: 10.213.16.5" in conf and "tls: off" in conf
    moved = t.relocated("10.213.40.0/24")
    assert moved.corosync.qdevice.ip == "10.213.40.5" and moved.corosync.qdevice.algorithm == "ffsplit"


@pytest.mark.parametrize("corosync, layers, message", [
    ({"qdevice": {"ip": "10.213.10.11"}}, ["cluster", "qdevice"],
     r"^<t>: corosync.qdevice.ip: 10.213.10.11 is a node's or a VIP's address"),
    ({"qdevice": {"ip": "10.9.9.9"}}, ["cluster", "qdevice"], r"corosync.qdevice.ip: 10.9.9.9 is outside subnet 10.213.10.0/24"),
    ({"qdevice": {"ip": "10.213.10.5", "algorithm": "2nodelms"}}, ["cluster", "qdevice"],
     r"corosync.qdevice.algorithm: '2nodelms' is not supported \(ffsplit, lms\)"),
    ({"qdevice": {"ip": "10.213.10.5"}}, ["cluster"], r"corosync.qdevice: needs the qdevice image layer"),
    ({"qdevice": {"ip": "10.213.10.5"}, "two_node": True}, ["cluster", "qdevice"],
     r"corosync.two_node: two_node and a quorum device exclude each other"),
    ({"qdevice": {"host": "x"}}, ["cluster", "qdevice"], r"corosync.qdevice"),
])
def test_quorum_device_errors_are_one_line(corosync, layers, message):
    data = copy.deepcopy(BASE)
    data["corosync"] = {**data["corosync"], **corosync}
    if corosync.get("two_node") is None:
        data["corosync"].pop("two_node", None)
    data["image"] = {"layers": layers}
    with pytest.raises(TopologyError, match=message) as e:
        topology.parse(data, "<t>")
    assert "\n" not in str(e.value)


def test_quorumtool_output_is_parsed():
    from harness.cluster import ClusterError, parse_quorumtool
    rows = ("    Nodeid      Votes    Qdevice Name\n         1          1    A,V,NMW node1 (local)\n"
            "         2          1    A,V,NMW node2\n")
    text = ("Quorum provider:  corosync_votequorum\nQuorate:          {q}\n\nExpected votes:   3\n"
            "Total votes:      {t}\nFlags:            Quorate Qdevice\n\n{rows}")
    v = parse_quorumtool(text.format(q="Yes", t=3, rows=rows + "         0          1            Qdevice\n"))
    assert v.quorate and v.expected_votes == 3 and v.total_votes == 3 and v.qdevice_vote and v.members == 2
    v = parse_quorumtool(text.format(q="No", t=1, rows=rows.replace("A,V", "NA,NV")))
    assert not v.quorate and v.total_votes == 1 and not v.qdevice_vote
    with pytest.raises(ClusterError, match="not corosync-quorumtool output"):
        parse_quorumtool("Cannot initialize QUORUM service\n")


# ---------------------------------------------------------------- extends

def test_merge_mappings_by_key_lists_replaced_null_removes():
    base = {"a": {"x": 1, "y": 2}, "l": [1, 2], "gone": 3}
    assert topology.merge(base, {"a": {"y": 5}, "l": [9], "gone": None}) == {"a": {"x": 1, "y": 5}, "l": [9]}
    assert base == {"a": {"x": 1, "y": 2}, "l": [1, 2], "gone": 3}      # the base is left alone


def test_a_variant_is_its_base_with_its_own_keys_and_addresses_moved(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "extends: ha-2node\nname: mine\nnetwork: {subnet: 10.213.99.0/24}\n"
        "fencing: null\nproperties: {stonith-enabled: false}\n")
    base, mine = topology.load_named("ha-2node"), topology.load(tmp_path / "mine.yaml")
    assert mine.name == "mine" and not mine.fencing and mine.properties["stonith-enabled"] == "false"
    assert base.fencing and base.properties["stonith-enabled"] == "true"
    assert [n.ip for n in mine.nodes] == ["10.213.99.11", "10.213.99.12"]
    assert mine.vip("public").ip == "10.213.99.100"
    assert mine.resources == base.resources and mine.http_checks == base.http_checks


def test_shipped_variants_equal_their_bases_but_for_what_they_say():
    tuned, defaults = topology.load_named("os-ih-2node-tuned"), topology.load_named("os-ih-2node")
    assert (tuned.openstack.instance_ha.monitoring_interval, defaults.openstack.instance_ha.monitoring_interval) == (5, 60)
    assert tuned.resources == defaults.resources and tuned.haproxy == defaults.haproxy
    assert tuned.subnet != defaults.subnet


@pytest.mark.parametrize("text, error", [
    ("extends: no-such\nname: v\n", "unknown topology 'no-such'"),
    ("extends: [a]\nname: v\n", "extends: must name a topology"),
    ("extends: v.yaml\nname: v\n", "leads back to this file"),
    ("extends: ha-2node\nname: v\nnetwork: {subnet: 10.213.99.0/25}\n", "must have the prefix of 10.213.10.0/24"),
])
def test_bad_extends_is_one_line_naming_the_file(tmp_path, text, error):
    (tmp_path / "v.yaml").write_text(text)
    with pytest.raises(TopologyError) as e:
        topology.load(tmp_path / "v.yaml")
    assert error in str(e.value) and "\n" not in str(e.value)


def test_a_cycle_through_two_files_is_named(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(TopologyError, match="a cycle"):
        topology.load(tmp_path / "a.yaml")


@pytest.mark.parametrize("name", ["os-ih-2node-tuned", "ha-2node-nofence"])
def test_the_resolved_print_of_a_variant_is_the_same_topology(name, tmp_path, capsys):
    import dataclasses
    from harness import cli
    cli.main(["topologies", name, "--resolved"])
    out = capsys.readouterr().out
    assert "\nextends:" not in out
    (tmp_path / "r.yaml").write_text(out)
    printed = topology.load(tmp_path / "r.yaml")
    assert dataclasses.replace(printed, source="", agents=()) == \
        dataclasses.replace(topology.load_named(name), source="", agents=())


def test_host_min_cpus():
    assert parse(lambda d: d.update(host={"min_cpus": 4})).min_cpus == 4
    assert parse(lambda d: None).min_cpus == 0
    assert "host.min_cpus: 'four' is not a whole number of cores" in error_of(
        lambda d: d.update(host={"min_cpus": "four"}))
    assert "host.cores: unknown key" in error_of(lambda d: d.update(host={"cores": 4}))
    assert topology.load_named("os-ih-3node-tuned").min_cpus == 4      # inherited from os-ih-3node
