"""pytest plugin: options, fixtures and markers that wire the harness together.

A scenario reads: start probes, apply a fault, wait, analyse. The plugin brings
the cluster up once per session, heals every fault and audits the cluster after
each scenario, and writes the histories and figures under the reports directory.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from . import checkers, topology as topo_mod
from .faults import Nemesis
from .history import History
from .run import ClusterRun
from .scenario import Scenario

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    g = parser.getgroup("ha-harness")
    g.addoption("--topology", default="ha-2node",
                help="topology YAML file, or a name from topologies/ (default: ha-2node)")
    g.addoption("--backend", default="docker", choices=["docker"], help="node backend (default: docker)")
    g.addoption("--keep-cluster", action="store_true",
                help="reuse a kept cluster of this topology if one exists, and keep it afterwards")
    g.addoption("--reports-dir", default="reports", help="where run reports go (default: reports/)")
    g.addoption("--probe-interval", type=float, default=0.25, help="client probe interval in seconds")
    g.addoption("--recovery-target", type=float, default=checkers.DEFAULT_TARGET_S,
                help="default recovery target per API in seconds (default: 120)")


def pytest_configure(config):
    config.addinivalue_line("markers", "nodes(n): the scenario needs a topology of at least n nodes")
    config.addinivalue_line("markers", "cluster: the test runs against a real cluster")
    config._ha_results = []


def topology_path(value: str) -> Path:
    path = Path(value)
    if path.suffix not in (".yaml", ".yml"):
        path = ROOT / "topologies" / f"{value}.yaml"
    return path


def progress(config):
    """A log function that reaches the terminal even while pytest captures output."""
    started = time.monotonic()
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")

    def log(msg: str) -> None:
        line = f"[harness +{time.monotonic() - started:6.1f}s] {msg}"
        if capman and reporter:
            with capman.global_and_fixture_disabled():
                reporter.write_line(line)
        else:
            print(line, flush=True)
    return log


@pytest.fixture(scope="session")
def topology(pytestconfig):
    try:
        return topo_mod.load(topology_path(pytestconfig.getoption("--topology")))
    except topo_mod.TopologyError as e:
        pytest.exit(f"invalid topology: {e}", returncode=4)


def pytest_collection_modifyitems(config, items):
    try:
        n_nodes = len(topo_mod.load(topology_path(config.getoption("--topology"))).nodes)
    except topo_mod.TopologyError:
        return
    for item in items:
        mark = item.get_closest_marker("nodes")
        if mark and n_nodes < mark.args[0]:
            item.add_marker(pytest.mark.skip(reason=f"needs {mark.args[0]} nodes, topology has {n_nodes}"))


@pytest.fixture(scope="session")
def run_dir(pytestconfig, topology):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(pytestconfig.getoption("--reports-dir")) / f"{stamp}-{topology.name}"
    path.mkdir(parents=True, exist_ok=True)
    pytestconfig._ha_run_dir = path
    return path


@pytest.fixture(scope="session")
def cluster_run(pytestconfig, topology, run_dir):
    run = ClusterRun(topology, backend=pytestconfig.getoption("--backend"),
                     keep=pytestconfig.getoption("--keep-cluster"), log=progress(pytestconfig))
    pytestconfig._ha_run = run
    try:
        run.up()
        yield run
    finally:
        run.down()


@pytest.fixture(scope="session")
def cluster(cluster_run):
    return cluster_run.cluster


@pytest.fixture
def history(request, topology):
    return History(request.node.nodeid, {"topology": topology.name, "test": request.node.nodeid})


@pytest.fixture
def nemesis(cluster, cluster_run, history):
    n = Nemesis(cluster, cluster_run.provisioner, history)
    yield n
    n.heal_all()


@pytest.fixture
def scenario(request, pytestconfig, cluster, history, nemesis, run_dir):
    """Probes + nemesis + analysis for one scenario; heals, settles and audits afterwards."""
    sc = Scenario(request.node.name, cluster, history, nemesis,
                  target_s=pytestconfig.getoption("--recovery-target"),
                  interval=pytestconfig.getoption("--probe-interval"))
    sc.expected_failures = set()     # resource ids whose failed actions the scenario causes on purpose
    try:
        yield sc
    finally:
        sc.stop_probes()
        nemesis.heal_all()
        hist_path = history.save(run_dir / "histories" / f"{_slug(request.node.nodeid)}.jsonl")
        for line in sc.summary_lines():
            print(line)
        pytestconfig._ha_results.append({"test": request.node.nodeid, "history": str(hist_path),
                                         "results": sc.results})
        _settle_and_audit(cluster, sc.expected_failures)


def _settle_and_audit(cluster, explain) -> None:
    cluster.wait_settled(timeout=240)
    audit = cluster.audit(explain=explain)
    if audit.explained_failures or not audit.ok:
        cluster.cleanup()            # the next scenario starts without old failures
        cluster.wait_settled(timeout=120)
    assert audit.ok, "post-scenario audit: " + "; ".join(audit.problems)


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    run_dir = getattr(config, "_ha_run_dir", None)
    if run_dir is None or not config._ha_results:
        return
    run = getattr(config, "_ha_run", None)
    payload = {"topology": run.topology.name if run else None,
               "run_id": run.run_id if run else None,
               "timings": {"bring_up_s": run.timings.bring_up_s,
                           "images": [vars(i) for i in run.timings.images]} if run else None,
               "scenarios": config._ha_results}
    (run_dir / "results.json").write_text(json.dumps(payload, indent=2, default=str))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    run_dir = getattr(config, "_ha_run_dir", None)
    if not config._ha_results:
        return
    tr = terminalreporter
    tr.section("HA scenario figures")
    for entry in config._ha_results:
        for r in entry["results"]:
            downs = ", ".join(f"{p}={'never' if not d['recovered'] else format(d['downtime_s'], '.2f') + 's'}"
                              for p, d in r["downtime"].items())
            tr.write_line(f"{entry['test']}: {r['fault']}({r['target']}) "
                          f"{'PASS' if r['verdict']['passed'] else 'FAIL'} {downs} "
                          f"[interval {r['probe_interval_s']}s]")
    if run_dir:
        tr.write_line(f"histories and results: {run_dir}")
