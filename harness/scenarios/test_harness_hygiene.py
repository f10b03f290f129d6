"""The harness itself: concurrent runs do not collide, an interrupted run leaves nothing."""
import ipaddress
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.labels import new_run_id

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]


def test_second_run_of_same_topology_gets_its_own_network(cluster, topology):
    if not hasattr(cluster.backend, "create_network"):
        pytest.skip(f"the {cluster.backend.name} backend's networks are made with its nodes (vagrant up): "
                    "a second run's subnet comes from the host's routes (unit-tested)")
    other = type(cluster.backend)(topology, new_run_id())
    try:
        subnet = ipaddress.ip_network(other.create_network())
        assert not subnet.overlaps(ipaddress.ip_network(cluster.topology.subnet))
    finally:
        removed = other.destroy()
    assert removed == [f"network {other.network_name}"]


def _objects_of_pid(cluster_run, pid: int):
    return cluster_run.platform.objects_owned_by(pid)


def test_ctrl_c_during_bring_up_leaves_nothing_behind(cluster, cluster_run, tmp_path):
    """Start a second pytest session, interrupt it while its cluster is being
    provisioned, and check that none of its containers or networks survive."""
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "harness/scenarios/test_node_failures.py::test_kill_vip_holder_moves_vip_to_survivor",
         "--backend", cluster.backend.name, "--reports-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # a job started with `&` (nohup, CI wrappers) has SIGINT ignored and its children
        # inherit that: give the child the disposition of a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + (180 if cluster.backend.name == "docker" else 600)   # a box build
        while time.monotonic() < deadline and len(_objects_of_pid(cluster_run, child.pid)) < 2:
            assert child.poll() is None, child.stdout.read()
            time.sleep(0.2)
        created = _objects_of_pid(cluster_run, child.pid)
        assert created, "the child run never created its nodes"
        time.sleep(3)                      # well inside provisioning (it takes ~30 s)
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=180)
    finally:
        if child.poll() is None:
            child.kill()
    left = _objects_of_pid(cluster_run, child.pid)
    assert not left, f"left behind after Ctrl-C: {left}\n{out[-2000:]}"
    assert "KeyboardInterrupt" in out or "Interrupted" in out or "interrupted" in out, out[-2000:]
