"""The harness as another project uses it: installed, with only a topology file of its own.

The wheel must carry the plugin's entry point, the shipped topologies and the stock
scenarios; a directory outside this checkout holding nothing but a topology file must run
the stock node-failure scenarios against a real cluster of that topology."""
import json
import subprocess
import sys
import zipfile
from xml.etree import ElementTree
from pathlib import Path

import pytest
import yaml

from harness.topology import SHIPPED

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_plugin_its_topologies_and_scenarios(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, text=True)
    wheel = next(tmp_path.glob("ha_harness-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "harness/topologies/os-aa-2node.yaml" in names
    assert "harness/scenarios/test_node_failures.py" in names
    assert "harness/agents/harness/openstack-api" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[pytest11]" in entry_points and "harness.plugin = harness.plugin" in entry_points
    assert "ha-harness = harness.cli:main" in entry_points


@pytest.mark.cluster
def test_a_directory_with_only_a_topology_file_runs_the_stock_node_scenarios(tmp_path):
    topo = yaml.safe_load((SHIPPED / "ha-2node.yaml").read_text())
    topo["name"] = "scratch-2node"
    (tmp_path / "my-cluster.yaml").write_text(yaml.safe_dump(topo))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "harness.scenarios.test_node_failures",
         "--topology", "my-cluster.yaml", "-k", "kill_vip_holder"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    results = json.loads(next((tmp_path / "reports").glob("*-scratch-2node/results.json")).read_text())
    assert results["run"]["topology"] == "scratch-2node"
    # named as a checkout's run names them (pytest leaves the module out under --pyargs)
    assert all(s["test"].startswith("harness/scenarios/test_node_failures.py::") for s in results["scenarios"])
    outcomes = {s["test"].split("::")[-1]: s["outcome"] for s in results["scenarios"]}
    assert outcomes == {"test_kill_vip_holder_moves_vip_to_survivor": "passed"}, outcomes
    # the figures reach CI dashboards that read only JUnit
    junit = ElementTree.parse(next((tmp_path / "reports").glob("*-scratch-2node/junit.xml")))
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props.get("node-kill.verdict") == "PASS", props
    assert float(props["node-kill.vip_move_s.public"]) > 0
