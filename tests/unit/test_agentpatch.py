"""Patched agents: parsing the options, and the node scripts run for real in a scratch tree."""
import subprocess

import pytest

from harness import agentpatch, topology
from harness.ab import order, session_args

AGENT = b"#!/bin/sh\necho patched\n"


@pytest.fixture
def topo():
    return topology.load_named("ha-2node")


def test_parse_agent_file(tmp_path, topo):
    f = tmp_path / "IPaddr2"
    f.write_bytes(AGENT)
    [o] = agentpatch.parse_overrides([f"ocf:heartbeat:IPaddr2={f}"], [], topo)
    assert (o.provider, o.type, o.target) == ("heartbeat", "IPaddr2", "/usr/lib/ocf/resource.d/heartbeat/IPaddr2")
    assert len(o.sha256) == 64


@pytest.mark.parametrize("spec, message", [
    ("IPaddr2=/x", "expected ocf:PROVIDER:TYPE=PATH"),
    ("ocf:heartbeat:IPaddr2=/no/such/file", "is not a file"),
])
def test_bad_agent_spec_is_one_line(spec, message, topo):
    with pytest.raises(agentpatch.AgentPatchError, match=message) as e:
        agentpatch.parse_overrides([spec], [], topo)
    assert "\n" not in str(e.value)


def test_agent_the_topology_does_not_run(tmp_path, topo):
    f = tmp_path / "galera"
    f.write_bytes(AGENT)
    with pytest.raises(agentpatch.AgentPatchError, match="runs no ocf:heartbeat:galera .*IPaddr2"):
        agentpatch.parse_overrides([f"ocf:heartbeat:galera={f}"], [], topo)


def test_not_a_script(tmp_path, topo):
    f = tmp_path / "IPaddr2"
    f.write_bytes(b"\x7fELF")
    with pytest.raises(agentpatch.AgentPatchError, match="no #! line"):
        agentpatch.parse_overrides([f"ocf:heartbeat:IPaddr2={f}"], [], topo)


def test_checkout_layout_and_provider_dir(tmp_path, topo):
    checkout = tmp_path / "resource-agents"
    (checkout / "heartbeat").mkdir(parents=True)
    (checkout / "heartbeat" / "IPaddr2").write_bytes(AGENT)
    (checkout / "heartbeat" / "galera").write_bytes(AGENT)         # not used by the topology: ignored
    [o] = agentpatch.parse_overrides([], [f"heartbeat={checkout}"], topo)
    assert o.agent == "ocf:heartbeat:IPaddr2"
    [o] = agentpatch.parse_overrides([], [f"heartbeat={checkout / 'heartbeat'}"], topo)
    assert o.source.endswith("heartbeat/IPaddr2")


def test_unbuilt_checkout_says_so(tmp_path, topo):
    (tmp_path / "heartbeat").mkdir()
    (tmp_path / "heartbeat" / "IPaddr2.in").write_bytes(AGENT)
    with pytest.raises(agentpatch.AgentPatchError, match="generated from IPaddr2.in"):
        agentpatch.parse_overrides([], [f"heartbeat={tmp_path}"], topo)


def test_dir_without_the_agents(tmp_path, topo):
    with pytest.raises(agentpatch.AgentPatchError, match="holds none of the topology's ocf:heartbeat agents"):
        agentpatch.parse_overrides([], [f"heartbeat={tmp_path}"], topo)



def test_backup_once_then_restore(tmp_path):
    root, stock = tmp_path / "ocf", tmp_path / "stock"
    (root / "heartbeat").mkdir(parents=True)
    target = root / "heartbeat" / "IPaddr2"
    target.write_text("stock\n")
    o = agentpatch.AgentOverride("ocf:heartbeat:IPaddr2", "/x", AGENT)
    subprocess.run(["sh", "-c", agentpatch.backup_script(o, str(stock), str(root))], check=True)
    target.write_bytes(AGENT)                                      # what backend.copy does
    subprocess.run(["sh", "-c", agentpatch.backup_script(o, str(stock), str(root))], check=True)
    assert (stock / "heartbeat" / "IPaddr2").read_text() == "stock\n"     # the patch never becomes "stock"
    keep = subprocess.run(["sh", "-c", agentpatch.restore_script([o.key], str(stock), str(root))],
                          check=True, capture_output=True, text=True)
    assert keep.stdout == "" and target.read_bytes() == AGENT      # still patched: the session wants it
    back = subprocess.run(["sh", "-c", agentpatch.restore_script([], str(stock), str(root))],
                          check=True, capture_output=True, text=True)
    assert back.stdout.strip() == "restored heartbeat/IPaddr2" and target.read_text() == "stock\n"
    assert not (stock / "heartbeat" / "IPaddr2").exists()


def test_restore_without_backups_is_a_no_op(tmp_path):
    r = subprocess.run(["sh", "-c", agentpatch.restore_script([], str(tmp_path / "none"), str(tmp_path))],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == ""


def test_gate_moves_an_ip_agent_off_the_vip(topo):
    o = agentpatch.AgentOverride("ocf:heartbeat:IPaddr2", "/x", AGENT)
    vip = next(p for p in topo.resources.primitives if p.id == "vip")
    params = agentpatch.gate_params(o, vip, topo)
    assert params["ip"] not in {n.ip for n in topo.nodes} | {v.ip for v in topo.vips}
    assert params["ip"].startswith("10.213.10.") and params["cidr_netmask"] == "24"
    cmd = agentpatch.gate_command(o, params)
    assert cmd.startswith("ocf-tester -n harness-gate ") and cmd.endswith(" /usr/lib/ocf/resource.d/heartbeat/IPaddr2")


def test_gate_result_verdicts():
    ok = agentpatch.GateResult("ocf:a:b", "node2", "ocf-tester", 0, "... b passed all tests")
    bad = agentpatch.GateResult("ocf:a:b", "node2", "ocf-tester", 1, "* rc=1: Monitoring an active resource")
    skipped = agentpatch.GateResult("ocf:a:b", None, "", None, "", skipped="b runs on every node")
    assert ok.passed and not bad.passed and not skipped.passed
    assert "FAILED (rc=1)" in bad.line() and "skipped" in skipped.line()


def test_ab_order_is_abba():
    assert "".join(order(3)) == "ABBAAB"
    assert order(1) == ["A", "B"]


def test_ab_sessions_gate_only_once():
    patch = ["--agent", "ocf:heartbeat:IPaddr2=/x"]
    a = session_args("A", True, "ab-1", "kill", patch)
    b1 = session_args("B", True, "ab-1", "kill", patch)
    b2 = session_args("B", False, "ab-1", None, patch)
    assert a == ["--keep-cluster", "--run-id", "ab-1", "-k", "kill"]
    assert b1 == a + patch and b2 == ["--keep-cluster", "--run-id", "ab-1", *patch, "--no-agent-gate"]


def test_ocft_verdict_reads_its_error_lines():
    ok = agentpatch.GateResult("ocf:heartbeat:IPaddr2", "node2", "ocft test IPaddr2", 0,
                               "Initializing 'IPaddr2' ...\nStarting 'IPaddr2' case 0 'check base env':\n", tool="ocft")
    bad = agentpatch.GateResult("ocf:heartbeat:IPaddr2", "node2", "ocft test IPaddr2", 0,
                                "Starting 'IPaddr2' case 1:\nERROR: './IPaddr2 start' failed, the return code is 1.\n",
                                tool="ocft")
    assert ok.passed and not bad.passed and bad.line().endswith("ocft on node2 FAILED (rc=0)")


def test_ocft_runs_only_for_heartbeat_agents_with_cases():
    class Node:
        def __init__(self, has):
            self.has, self.cmds = has, []

        def exec(self, node, cmd, timeout=60, check=True):
            from harness.backends import ExecResult
            self.cmds.append(cmd)
            return ExecResult(0 if self.has else 1, "", "")
    own = agentpatch.AgentOverride("ocf:harness:openstack-api", "/x", AGENT)
    ip = agentpatch.AgentOverride("ocf:heartbeat:IPaddr2", "/x", AGENT)
    assert agentpatch.ocft_cases(Node(True), "node2", own) == []
    assert agentpatch.ocft_cases(Node(False), "node2", ip) == []
    [r] = agentpatch.ocft_cases(Node(True), "node2", ip)
    assert r.tool == "ocft" and r.command == "ocft make IPaddr2 && ocft test IPaddr2"
