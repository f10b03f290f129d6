"""Kept clusters are the user's: gc removes only crashed runs, never a live or kept one,
and two commands on one run never collide (real engine, real `python -m harness`)."""
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.bare_cluster]
ROOT = Path(__file__).resolve().parents[2]

def harness(*args, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kw)


def bring_up_s(cluster_run) -> int:
    """What a bring-up may take on the session's backend (VMs under TCG: minutes)."""
    return 300 if cluster_run.backend.name == "docker" else 1200

def test_gc_leaves_the_live_session_alone(cluster_run):
    r = harness("gc")
    assert r.returncode == 0, r.stderr
    assert f"kept run {cluster_run.run_id} (live" in r.stdout, r.stdout
    assert cluster_run.backend.exists()

def test_two_ups_share_one_kept_cluster_that_gc_keeps(cluster_run, topology):
    run_id = f"keep-own-{uuid.uuid4().hex[:6]}"
    ups = [subprocess.Popen([sys.executable, "-m", "harness", "up", topology.name, "--run-id", run_id,
                             "--backend", cluster_run.backend.name, "--wait", str(bring_up_s(cluster_run))],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for _ in range(2)]
    try:
        outs = [p.communicate(timeout=2 * bring_up_s(cluster_run))[0] for p in ups]
        assert [p.returncode for p in ups] == [0, 0], outs
        assert sum("is in use by" in o for o in outs) == 1, outs        # one waited, and said so
        assert all("Traceback" not in o for o in outs), outs
        r = harness("gc")
        assert f"kept run {run_id} (kept" in r.stdout, r.stdout
        assert cluster_run.backend.__class__(topology, run_id).exists()
    finally:
        for p in ups:
            if p.poll() is None:
                p.kill()
        down = harness("down", run_id, "--force")
    assert down.returncode == 0 and "removed" in down.stdout, down.stdout + down.stderr

def test_an_up_killed_during_bring_up_is_removed_by_gc(cluster_run, topology):
    run_id = f"crash-{uuid.uuid4().hex[:6]}"

    node = cluster_run.platform.node_object          # "container", "domain"

    def nodes_created():
        return [o for o in cluster_run.platform.run_objects(run_id) if o.startswith(f"{node} ")]
    up = subprocess.Popen([sys.executable, "-m", "harness", "up", topology.name, "--run-id", run_id,
                           "--backend", cluster_run.backend.name],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + bring_up_s(cluster_run)
        while time.monotonic() < deadline and len(nodes_created()) < len(topology.nodes):
            time.sleep(0.2)
        up.send_signal(signal.SIGKILL)
        up.wait()
    finally:
        if up.poll() is None:
            up.kill()
    assert nodes_created(), "nothing was created"
    r = harness("gc")
    assert f"removed {node} ha-harness-{run_id}-" in r.stdout, r.stdout + r.stderr
    assert not cluster_run.platform.run_objects(run_id)
