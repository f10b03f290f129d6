"""The ab command's bookkeeping: which runs belong to which side, the gate, the verdict
(on copies of the real recorded ha-2node and ha-2node-slow runs)."""
import json
import shutil
from pathlib import Path

import pytest

from harness import ab
from harness.plugin import hang_targets
from harness import topology

AB = Path(__file__).parent / "data" / "ab"
FAST, SLOW = AB / "20261121-075216-ha-2node", AB / "20261121-075305-ha-2node-slow"
GATE = [{"agent": "ocf:heartbeat:IPaddr2", "node": "node2", "command": "ocf-tester ...", "rc": 0,
         "passed": True, "skipped": None, "output": "IPaddr2 passed all tests"}]


def job_dir(tmp_path, sides, gate=GATE):
    """A job directory as AbJob leaves it: one run directory per session, records with sides."""
    records = []
    for i, (side, src) in enumerate(sides):
        name = f"run{i}-{side}"
        shutil.copytree(src, tmp_path / name)
        doc = json.loads((tmp_path / name / "results.json").read_text())
        if side == "B" and gate:
            doc["run"]["agent_gate"] = gate
        (tmp_path / name / "results.json").write_text(json.dumps(doc))
        records.append({"side": side, "run_dir": name, "state": "ran", "exit_code": 0})
    return records


def test_slower_patch_is_a_regression(tmp_path):
    records = job_dir(tmp_path, [(s, FAST if s == "A" else SLOW) for s in ab.order(4)])
    said = []
    assert ab.compare(tmp_path, records, 0.95, 0.5, out=said.append) == 1
    text = (tmp_path / "comparison.txt").read_text()
    assert "slower" in text and "gate: ocf:heartbeat:IPaddr2: ocf-tester passed" in said
    doc = json.loads((tmp_path / "comparison.json").read_text())
    assert doc["agent_gate"] == GATE and len(doc["runs"]["A"]) == len(doc["runs"]["B"]) == 4
    assert "Static gate" in (tmp_path / "comparison.html").read_text()


def test_same_agent_on_both_sides_is_no_regression(tmp_path):
    records = job_dir(tmp_path, [(s, FAST) for s in ab.order(4)])
    assert ab.compare(tmp_path, records, 0.95, 0.5, out=lambda m: None) == 0
    assert "slower" not in (tmp_path / "comparison.txt").read_text()


def test_rejudge_compares_a_finished_ab_again(tmp_path):
    records = job_dir(tmp_path, [(s, FAST if s == "A" else SLOW) for s in ab.order(4)])
    (tmp_path / "job.json").write_text(json.dumps({"topologies": records}))
    assert ab.rejudge(str(tmp_path), 0.95, 0.5) == 1
    assert ab.rejudge(str(tmp_path), 0.95, 60.0) == 0          # no shift reaches a minute
    (tmp_path / "job.json").write_text(json.dumps({"topologies": [{"run_dir": "x"}]}))
    with pytest.raises(ab.AbError, match="without A/B sides"):
        ab.rejudge(str(tmp_path), 0.95, 0.5)
    with pytest.raises(ab.AbError, match="not an A/B directory"):
        ab.rejudge(str(tmp_path / "none"), 0.95, 0.5)


def test_failed_gate_means_no_side_b(tmp_path):
    failed = [{**GATE[0], "rc": 1, "passed": False, "output": "* rc=1: Monitoring a stopped resource"}]
    records = job_dir(tmp_path, [("A", FAST), ("B", FAST)], gate=failed)
    doc = json.loads((tmp_path / "run1-B" / "results.json").read_text())
    (tmp_path / "run1-B" / "results.json").write_text(json.dumps({**doc, "scenarios": []}))   # stopped before any
    said = []
    assert ab.compare(tmp_path, records, 0.95, 0.5, out=said.append) == 1
    assert "gate: ocf:heartbeat:IPaddr2: ocf-tester FAILED rc=1" in said
    assert said[-1] == "REGRESSION: side B has no run: its agent gate failed"
    assert "Monitoring a stopped resource" in (tmp_path / "comparison.txt").read_text()


def test_no_b_run_at_all(tmp_path):
    records = job_dir(tmp_path, [("A", FAST)]) + [{"side": "B", "run_dir": None, "state": "not run"}]
    said = []
    assert ab.compare(tmp_path, records, 0.95, 0.5, out=said.append) == 1
    assert said[-1].startswith("REGRESSION: side B has no run")


def test_hang_target_is_the_checked_api_else_the_first_daemon():
    assert hang_targets(topology.load_named("os-ap-2node")) == [("keystone", "keystone.service")]
    assert hang_targets(topology.load_named("ha-2node")) == [("web", "harness-web")]
