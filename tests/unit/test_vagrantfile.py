"""The vagrant backend's per-run Vagrantfile, rendered from topologies (no Vagrant needed)."""
import re

import pytest

from harness import topology
from harness.backends import BackendError, get_backend, get_platform
from harness.backends import vagrant

RUN = "r0123ab"


def render(name: str, run_id: str = RUN, **kw) -> str:
    t = topology.load_named(name)
    return vagrant.render_vagrantfile(t, run_id, vagrant.box_name(t.layers), **kw)


def vms(text: str) -> dict[str, str]:
    """{host: its `config.vm.define` block}."""
    return dict(re.findall(r"config\.vm\.define '([^']+)' do \|host\|\n(.*?)\n  end\n", text, re.S))


def setting(block: str, key: str) -> str:
    return re.search(rf"\b{re.escape(key)}:? = ?'?([^'\n,]*)", block).group(1)


def test_one_vm_per_node_named_after_the_run():
    text = render("ha-2node")
    t = topology.load_named("ha-2node")
    assert list(vms(text)) == ["node1", "node2"]
    # domains are <prefix>-<run>-<host>: vagrant-libvirt prepends default_prefix to the host
    assert "lv.default_prefix = 'ha-harness-r0123ab-'" in text
    for node in t.nodes:
        block = vms(text)[node.name]
        assert f"host.vm.hostname = '{node.name}'" in block
        assert f"ip: '{node.ip}', netmask: '255.255.255.0'" in block


def test_addresses_follow_a_relocated_topology():
    t = topology.load_named("ha-2node").relocated("10.213.77.0/24")
    text = vagrant.render_vagrantfile(t, RUN, "box")
    assert "ip: '10.213.77.11'" in vms(text)["node1"] and "ip: '10.213.77.12'" in vms(text)["node2"]
    assert "10.213.10." not in text


def test_qdevice_arbiter_is_one_more_vm_at_its_address():
    text = render("ha-2node-qdevice")
    t = topology.load_named("ha-2node-qdevice")
    assert list(vms(text)) == ["node1", "node2", vagrant.QNETD]
    assert f"ip: '{t.corosync.qdevice.ip}'" in vms(text)[vagrant.QNETD]
    assert "lv.memory = 1024" in vms(text)[vagrant.QNETD]
    assert vagrant.QNETD not in vms(render("ha-2node"))


def test_networks_are_per_run_isolated_and_without_forwarding():
    text = render("ha-2node-qdevice")
    assert "lv.management_network_name = 'ha-harness-r0123ab-mgmt'" in text
    assert 'lv.management_network_mode = "none"' in text
    for block in vms(text).values():
        assert "libvirt__network_name: 'ha-harness-r0123ab-cluster'" in block
        assert 'libvirt__forward_mode: "none"' in block and "libvirt__dhcp_enabled: false" in block
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"nat|route|open|public_network|forwarded_port|bridge", code)
    assert 'synced_folder ".", "/vagrant", disabled: true' in text


def test_cluster_macs_are_fixed_and_unique():
    macs = re.findall(r"mac: '([0-9a-f:]{17})'", render("ha-2node-qdevice"))
    assert macs == ["52:54:00:d5:10:0b", "52:54:00:d5:10:0c", "52:54:00:d5:10:05"]


def test_direct_kernel_boot_from_the_box():
    text = render("ha-2node")
    box = vagrant.box_name(("cluster",))
    assert f"config.vm.box = '{box}'" in text
    assert f"lv.kernel = '/var/lib/ha-harness/boxes/{box}/vmlinuz'" in text
    assert f"lv.initrd = '/var/lib/ha-harness/boxes/{box}/initrd.img'" in text
    assert "lv.cmd_line = 'root=/dev/vda rw console=ttyS0 net.ifnames=0 " in text    # eth0, eth1 by order


def test_cpus_and_memory_per_node():
    for block in vms(render("ha-2node")).values():
        assert setting(block, "lv.cpus") == "1" and setting(block, "lv.memory") == "2048"
    for block in vms(render("os-ap-2node")).values():
        assert setting(block, "lv.memory") == "3072"


def test_driver_is_qemu_unless_kvm_is_asked_for():
    assert "lv.driver = 'qemu'" in render("ha-2node")
    assert "lv.driver = 'kvm'" in render("ha-2node", driver="kvm")
    with pytest.raises(BackendError, match="must be qemu"):
        render("ha-2node", driver="xen")


def test_bad_run_id_is_one_line():
    with pytest.raises(BackendError) as e:
        render("ha-2node", run_id="Bad Run")
    assert "\n" not in str(e.value) and "'Bad Run'" in str(e.value)


def test_box_name_follows_the_recipes():
    cluster, qdevice = vagrant.box_name(("cluster",)), vagrant.box_name(("cluster", "qdevice"))
    assert cluster.startswith("ha-harness-cluster-") and qdevice.startswith("ha-harness-qdevice-")
    assert cluster == vagrant.box_name(["cluster"]) != vagrant.box_name(("openstack",))
    with pytest.raises(BackendError, match="unknown image layer 'nope'"):
        vagrant.box_name(("cluster", "nope"))


def test_ruby_strings_interpolate_nothing():
    assert vagrant._ruby_str("a'b\\c#{x}") == "'a\\'b\\\\c#{x}'"


def test_registered_with_the_cluster_on_the_second_nic():
    assert get_platform("vagrant").name == "vagrant"
    backend = get_backend("vagrant", topology.load_named("ha-2node"), RUN)
    assert backend.name == "vagrant" and backend.cluster_nic == "eth1"      # eth0: Vagrant's SSH
    assert backend.domain("node2") == f"ha-harness-{RUN}-node2"
    with pytest.raises(BackendError, match="^unknown backend 'lxd'"):
        get_backend("lxd", topology.load_named("ha-2node"), RUN)


def test_host_problems_one_line_each(monkeypatch):
    monkeypatch.setattr(vagrant, "_which", lambda program: None)
    monkeypatch.setattr(vagrant, "kvm_mode_problem", lambda: None)
    monkeypatch.setattr("harness.backends.dockerhost.problems", lambda: [])
    found = vagrant.host_problems()
    assert [p.split()[0] for p in found] == [p for p, _ in vagrant.PROGRAMS]
    assert all("\n" not in p and "host prepare --backend vagrant" in p for p in found)


def test_prepare_without_root_is_one_line(monkeypatch):
    monkeypatch.setattr(vagrant, "_missing_packages", lambda: ["qemu-utils"])
    monkeypatch.setattr(vagrant.os, "geteuid", lambda: 1000)
    monkeypatch.setattr("harness.backends.dockerhost.prepare", lambda say: None)
    with pytest.raises(vagrant.HostNotReady) as e:
        vagrant.prepare(say=lambda m: None)
    assert "\n" not in str(e.value) and "needs root" in str(e.value) and "install qemu-utils" in str(e.value)


def test_shared_volumes_are_9p_exports_to_the_nodes_only():
    shares = {"/var/lib/ha-harness/vagrant/r0123ab/volumes/mysql": "/var/lib/mysql"}
    blocks = vms(vagrant.render_vagrantfile(topology.load_named("ha-2node-qdevice"), RUN, "box", shares=shares))
    line = ("host.vm.synced_folder '/var/lib/ha-harness/vagrant/r0123ab/volumes/mysql', '/var/lib/mysql', "
            'type: "9p", accessmode: "mapped", mount: false')
    assert line in blocks["node1"] and line in blocks["node2"]
    assert "synced_folder" not in blocks[vagrant.QNETD]        # the arbiter runs no database
    assert "9p" not in render("os-ap-2node")                     # no shares given, none rendered
