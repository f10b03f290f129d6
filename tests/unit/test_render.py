from pathlib import Path

from harness import provision, topology

ROOT = Path(__file__).resolve().parents[2]


def test_corosync_conf_two_node_and_nodelist():
    t = topology.load(ROOT / "harness/topologies/ha-2node.yaml").relocated("10.213.50.0/24")
    conf = provision.render_corosync_conf(t, "run1")
    assert "transport: knet" in conf and "token: 1000" in conf
    assert "two_node: 1" in conf
    assert conf.count("ring0_addr:") == 2 and "ring0_addr: 10.213.50.12" in conf
    assert "consensus" not in conf


def test_corosync_conf_three_nodes_no_two_node():
    conf = provision.render_corosync_conf(topology.load(ROOT / "harness/topologies/ha-3node.yaml"), "r")
    assert "two_node" not in conf and "nodeid: 3" in conf


def test_cib_renders_topology_resources():
    t = topology.load_named("ha-2node-nofence")
    cib = provision.render_cib(t)
    props = next(line for line in cib.splitlines() if line.startswith("property cib-bootstrap-options:"))
    assert {"stonith-enabled=false", "no-quorum-policy=stop"} <= set(props.split()[2:])
    assert "primitive vip ocf:heartbeat:IPaddr2 params ip=10.213.15.100 cidr_netmask=24 nic=eth0 " \
           "op monitor interval=5s timeout=20s" in cib
    assert "group g_public vip web" in cib
    assert "rsc_defaults rsc-options: priority=1 resource-stickiness=100" in cib


def test_cib_quotes_values_with_spaces():
    data = {"name": "q", "network": {"subnet": "10.1.2.0/24"},
            "nodes": [{"name": "a", "ip": "10.1.2.5"}, {"name": "b", "ip": "10.1.2.6"}],
            "resources": {"primitives": [{"id": "x", "agent": "ocf:heartbeat:Dummy",
                                          "params": {"state": "a b"}}],
                          "clones": [{"id": "x-clone", "rsc": "x", "meta": {"interleave": True}}],
                          "colocations": [{"id": "c1", "rsc": "x-clone", "with": "x-clone", "score": 100}],
                          "orders": [{"id": "o1", "first": "x-clone", "then": "x-clone", "kind": "Optional"}]}}
    cib = provision.render_cib(topology.parse(data))
    assert "params state='a b'" in cib
    assert "clone x-clone x meta interleave=true" in cib
    assert "colocation c1 100: x-clone x-clone" in cib and "order o1 Optional: x-clone x-clone" in cib


def test_haproxy_cfg_one_writer_and_checks():
    t = topology.load(ROOT / "harness/topologies/os-aa-3node.yaml").relocated("10.213.60.0/24")
    cfg = provision.render_haproxy_cfg(t)
    keystone = cfg.split("listen keystone")[1].split("listen ")[0]
    assert "bind 10.213.60.100:5000" in keystone and "option httpchk GET /v3" in keystone
    assert "server node3 10.213.60.13:5000 check inter 2000 rise 2 fall 5\n" in keystone
    mysql = cfg.split("listen mysql")[1]
    assert "mode tcp" in mysql and "option httpchk GET /" in mysql     # the clustercheck on 9200
    assert ("server node1 10.213.60.11:3306 check port 9200 inter 1000 rise 2 fall 2 "
            "on-marked-down shutdown-sessions\n") in mysql
    assert mysql.count(" backup") == 2


def test_cib_promotable_clone_monitors_both_roles():
    cib = provision.render_cib(topology.load(ROOT / "harness/topologies/os-aa-3node.yaml"))
    galera = next(line for line in cib.splitlines() if line.startswith("primitive galera "))
    assert "op monitor interval=20s timeout=30s op monitor role=Promoted interval=10s" in galera
    assert "clone cl_galera galera meta promotable=true promoted-max=3 interleave=true" in cib


def test_corosync_conf_has_no_trailing_comments():
    # corosync's parser takes "yes   # why" as the value: corosync refuses to start
    conf = provision.render_corosync_conf(topology.load(ROOT / "harness/topologies/ha-3node.yaml"), "r")
    assert not [line for line in conf.splitlines() if "#" in line and not line.strip().startswith("#")]
    assert "to_syslog: yes" in conf


def test_systemd_start_timeout_follows_the_resources_start_timeout():
    from harness.openstack import unit_start_timeouts
    t = topology.load(ROOT / "harness/topologies/os-aa-2node.yaml")
    timeouts = unit_start_timeouts(t)
    assert timeouts["nova-compute.service"] == "240s"       # the resource's own start op
    assert "haproxy.service" not in timeouts                 # systemd: class, not the agent
    assert set(timeouts) >= {"keystone.service", "cinder-volume.service"}


def test_galera_check_script_compiles():
    import py_compile
    py_compile.compile(str(ROOT / "harness/templates/openstack/galera-check.py"), doraise=True)
