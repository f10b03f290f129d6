"""The job summary and the job runner, on run directories written here (no cluster):
results.json documents built with the harness's own helpers, a fake pytest for the runner."""
import copy
import json
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from harness import cli, job
from harness.report import jobsummary, results, session

EXAMPLE = Path(__file__).parent / "data" / "reports" / "20261121-062850-ha-2node" / "results.json"
AUDIT_FAILURE = textwrap.dedent("""\
    [teardown] def _settle_and_audit(cluster, explain) -> None:
    >       assert audit.ok, "post-scenario audit: " + "; ".join(audit.problems)
    E       AssertionError: post-scenario audit: vip active on node1 and node2
    E       assert False

    harness/plugin.py:222: AssertionError""")


def fault(start, end):
    r = copy.deepcopy(json.loads(EXAMPLE.read_text())["scenarios"][0]["results"][0])
    r.update(fault_start=start, fault_end=end)
    return r


def scenario(test, outcome, duration=10.0, message=None, phases=None, faults=()):
    s = results.scenario_entry(test, None, [], Path("."),
                               {"outcome": outcome, "duration_s": duration, "message": message})
    s["results"] = [fault(a, b) for a, b in faults]
    if phases is not None:
        s["phases"] = phases
    return s


def run_doc(topology, scenarios, exit_status=0, resets=None):
    run = results.run_info(topology=topology, started_wall=1000.0, finished_wall=1600.0,
                           exit_status=exit_status, junit="junit.xml")
    if resets is not None:
        run["resets"] = copy.deepcopy(resets)
    return {"schema_version": 1, "generated_by": "test", "generated_wall": 1.0, "run": run, "scenarios": scenarios}


def write_run(parent, topology, doc, junit=None, name=None):
    d = parent / (name or f"20261122-100000-{topology}")
    results.write(results.validate(doc), d / "results.json")
    (d / "report.html").write_text("<html></html>")
    if junit:
        (d / "junit.xml").write_text(junit)
    return d


RESET = {"after": "tests/scenarios/test_net.py::test_partition", "reason": "post-scenario audit failed",
         "steps": ["crm_resource --cleanup", "wait settled"], "took_s": 42.5, "ok": True}


@pytest.fixture
def two_runs(tmp_path):
    """ha-2node green with an expected failure; os-ap-2node with a failure, an audit error and a reset."""
    write_run(tmp_path, "ha-2node", run_doc("ha-2node", [
        scenario("tests/scenarios/test_node.py::test_kill", "passed", 100.0,
                 phases={"setup": 5.0, "baseline": 10.0, "fault": 20.0, "recovery_wait": 30.0, "analysis": 1.0,
                         "settle": 20.0, "audit": 4.0, "reset": 0.0, "dns_probe": 10.0},
                 faults=[(2.0, 12.0)]),
        scenario("tests/scenarios/test_node.py::test_freeze", "xfailed", 50.0, "no fencing: the frozen node keeps the VIP",
                 phases={"setup": 5.0, "fault": 25.0, "settle": None}, faults=[(2.0, 7.0), (10.0, None)]),
        scenario("tests/scenarios/test_quorum.py::test_3node", "skipped", 0.0, "needs 3 nodes")]))
    write_run(tmp_path, "os-ap-2node", run_doc("os-ap-2node", [
        scenario("tests/scenarios/test_node.py::test_kill", "failed", 300.0,
                 "[call] >  assert downtime < target\nE   AssertionError: keystone down 130.2s > target 120s\nE   assert 130.2 < 120",
                 phases={"fault": 60.0}, faults=[(2.0, 62.0)]),
        scenario("tests/scenarios/test_net.py::test_partition", "error", 200.0, AUDIT_FAILURE, faults=[(2.0, 22.0)]),
        scenario("tests/scenarios/test_svc.py::test_stop", "passed", 20.0)], exit_status=1, resets=[RESET]))
    return tmp_path


def test_counts_statuses_and_paths(two_runs):
    summary = jobsummary.build(*jobsummary.records_from_dirs([two_runs]))
    ha, ap = summary["topologies"]
    assert ha["counts"] == {"passed": 1, "failed": 0, "error": 0, "xfailed": 1, "xpassed": 0, "skipped": 1, "not_run": 0}
    assert ap["counts"] == {"passed": 1, "failed": 1, "error": 1, "xfailed": 0, "xpassed": 0, "skipped": 0, "not_run": 0}
    assert (ha["status"], ap["status"]) == ("passed", "failed")
    assert ha["wall_s"] == 600.0 and ap["exit_code"] == 1
    assert ha["report"].endswith("ha-2node/report.html") and ha["results"].endswith("results.json")
    assert ha["junit"] is None          # named in results.json, but no such file
    assert not summary["ok"] and summary["not_passed"] == ["os-ap-2node"] and jobsummary.exit_code(summary) == 1


def test_failures_by_test_with_their_line_expected_failures_with_their_reason_and_resets(two_runs):
    summary = jobsummary.build(*jobsummary.records_from_dirs([two_runs]))
    ha, ap = summary["topologies"]
    assert ap["problems"] == [
        {"test": "tests/scenarios/test_node.py::test_kill", "outcome": "failed",
         "message": "[call] AssertionError: keystone down 130.2s > target 120s"},
        {"test": "tests/scenarios/test_net.py::test_partition", "outcome": "error",
         "message": "[teardown] AssertionError: post-scenario audit: vip active on node1 and node2"}]
    assert ha["xfails"] == [{"test": "tests/scenarios/test_node.py::test_freeze",
                             "reason": "no fencing: the frozen node keeps the VIP"}]
    assert ap["resets"] == [RESET] and ha["resets"] == []


def test_phase_sums_slowest_scenarios_and_time_per_fault_second(two_runs):
    ha, ap = jobsummary.build(*jobsummary.records_from_dirs([two_runs]))["topologies"]
    # the harness's phases in the order they happen, unknown ones after them; null is no time
    assert list(ha["phases"]) == ["setup", "baseline", "fault", "recovery_wait", "analysis", "settle", "audit",
                                  "reset", "dns_probe"]
    assert ha["phases"]["setup"] == 10.0 and ha["phases"]["fault"] == 45.0 and ha["phases"]["settle"] == 20.0
    # 150 s of scenarios for 10 + 5 s of fault windows (the unhealed fault has no window)
    assert (ha["scenario_s"], ha["fault_window_s"], ha["scenario_s_per_fault_s"]) == (150.0, 15.0, 10.0)
    assert (ap["scenario_s"], ap["fault_window_s"], ap["scenario_s_per_fault_s"]) == (520.0, 80.0, 6.5)
    assert [s["test"] for s in ap["slowest"]] == ["tests/scenarios/test_node.py::test_kill",
                                                  "tests/scenarios/test_net.py::test_partition",
                                                  "tests/scenarios/test_svc.py::test_stop"]
    assert ap["slowest"][0]["phases"] == {"fault": 60.0}


def test_missing_results_crash_not_run_and_no_tests_fail_the_job(tmp_path):
    write_run(tmp_path, "ha-2node", run_doc("ha-2node", [scenario("t.py::test_a", "passed")]))
    (tmp_path / "20261122-100500-os-ap-2node").mkdir()          # pytest died before results.json
    (tmp_path / "job.json").write_text(json.dumps({"job_dir": str(tmp_path), "interrupted": None, "topologies": [
        {"topology": "ha-2node", "args": [], "state": "ran", "exit_code": 0, "wall_s": 61.0,
         "run_dir": "20261122-100000-ha-2node", "selected": 1},
        {"topology": "os-ap-2node", "args": [], "state": "ran", "exit_code": 3, "wall_s": 5.0,
         "run_dir": "20261122-100500-os-ap-2node", "selected": None},
        {"topology": "os-aa-2node", "args": [], "state": "ran", "exit_code": 5, "wall_s": 2.0,
         "run_dir": None, "selected": 0},
        {"topology": "os-aa-3node", "args": ["--probe-interval=1.0"], "state": "ran", "exit_code": -9,
         "wall_s": 2.0, "run_dir": None, "selected": None}]}))
    summary = jobsummary.build(*jobsummary.records_from_dirs([tmp_path]))
    ok, crashed, empty, killed = summary["topologies"]
    assert ok["status"] == "passed" and ok["counts"]["passed"] == 1
    assert crashed["status"] == "crashed" and crashed["counts"] is None
    assert crashed["note"].startswith("pytest exited with 3 before writing results.json (")
    assert empty["status"] == "no tests"
    assert killed["note"] == "pytest was killed by SIGKILL before writing results.json"
    assert summary["not_passed"] == ["os-ap-2node", "os-aa-2node", "os-aa-3node"]
    assert jobsummary.exit_code(summary) == 1
    out = jobsummary.text(summary)
    assert "os-aa-3node (--probe-interval=1.0)  CRASHED" in out and out.splitlines()[2].endswith("exit")
    assert out.rstrip().endswith("job FAILED: os-ap-2node crashed, os-aa-2node no tests, os-aa-3node crashed")


def test_tests_selected_but_never_reported_are_not_run(tmp_path):
    write_run(tmp_path, "ha-2node", run_doc("ha-2node", [scenario("t.py::test_a", "passed")]))
    record = {**jobsummary.record_from_run_dir(tmp_path / "20261122-100000-ha-2node"), "selected": 4}
    t = jobsummary.topology_summary(record)
    assert t["counts"]["not_run"] == 3 and t["status"] == "incomplete"


def test_junit_tells_an_expected_failure_from_a_skip_in_older_files(tmp_path):
    junit = """<testsuites><testsuite>
      <testcase classname="tests.scenarios.test_node" name="test_freeze" time="50">
        <skipped type="pytest.xfail" message="no fencing: frozen node"/></testcase>
      <testcase classname="tests.scenarios.test_node" name="test_skip" time="0">
        <skipped type="pytest.skip" message="needs 3 nodes"/></testcase>
      <testcase classname="tests.scenarios.test_node.TestX" name="test_y[a]" time="1">
        <failure message="AssertionError: boom">long text</failure></testcase>
    </testsuite></testsuites>"""
    write_run(tmp_path, "ha-2node", run_doc("ha-2node", [
        scenario("tests/scenarios/test_node.py::test_freeze", "skipped", 50.0, "long failure text"),
        scenario("tests/scenarios/test_node.py::test_skip", "skipped", 0.0, "needs 3 nodes")]), junit=junit)
    t = jobsummary.build(*jobsummary.records_from_dirs([tmp_path]))["topologies"][0]
    assert t["xfails"] == [{"test": "tests/scenarios/test_node.py::test_freeze", "reason": "no fencing: frozen node"}]
    # a test only junit.xml knows (no cluster fixture) still counts
    assert t["problems"] == [{"test": "tests/scenarios/test_node.py::TestX::test_y[a]", "outcome": "failed",
                              "message": "AssertionError: boom"}]
    assert t["counts"]["skipped"] == 1 and t["counts"]["xfailed"] == 1 and t["status"] == "failed"


def test_markdown_and_json_are_written_into_the_job_directory(two_runs, tmp_path):
    summary = jobsummary.build(*jobsummary.records_from_dirs([two_runs]))
    js, md = jobsummary.write(summary, tmp_path / "out")
    assert json.loads(js.read_text())["topologies"][1]["problems"][0]["outcome"] == "failed"
    text = md.read_text()
    assert text.startswith("# Job summary: 2 topologies\n\n**job FAILED: os-ap-2node failed**")
    assert "| topology | status | passed | failed | errors | xfailed | xpassed | skipped | not run | wall | exit |" in text
    assert "| ha-2node | passed | 1 | 0 | 0 | 1 | 0 | 1 | 0 | 10m00s | 0 |" in text
    assert "## Failures and errors (2)\n\n- os-ap-2node FAILED tests/scenarios/test_node.py::test_kill: " in text
    assert "## Expected failures (1)" in text and "## Cluster resets (1)" in text
    assert ("- os-ap-2node after tests/scenarios/test_net.py::test_partition: post-scenario audit failed -> ok "
            "in 42.5s (crm_resource --cleanup; wait settled)") in text
    assert "| ha-2node | 10.0s | 10.0s | 45.0s | 30.0s | 1.0s | 20.0s | 4.0s | 0.0s | 10.0s | 2m30s | 15.0s | 10.0 |" in text


def test_one_line_is_the_exception_line_with_its_phase():
    assert jobsummary.one_line(AUDIT_FAILURE) == "[teardown] AssertionError: post-scenario audit: vip active on node1 and node2"
    assert jobsummary.one_line("[setup] ClusterError: bring-up failed\n") == "[setup] ClusterError: bring-up failed"
    assert jobsummary.one_line(None) == "" and len(jobsummary.one_line("E " + "x" * 500)) == 200


def test_schema_takes_phases_and_resets_and_checks_their_types():
    doc = run_doc("ha-2node", [scenario("t.py::test_a", "xpassed", phases={"setup": 1.0, "whatever": None})],
                  resets=[RESET])
    results.validate(doc)
    doc["run"]["resets"][0]["ok"] = "yes"
    with pytest.raises(results.ResultsError, match="run/resets/0/ok"):
        results.validate(doc)
    doc = run_doc("ha-2node", [scenario("t.py::test_a", "passed", phases={"setup": "long"})])
    with pytest.raises(results.ResultsError, match="scenarios/0/phases/setup"):
        results.validate(doc)


class Rep:
    def __init__(self, when, outcome, wasxfail=None):
        self.nodeid, self.when, self.duration, self.longreprtext, self.longrepr = "t::x", when, 1.0, "E  boom", "E  boom"
        self.failed, self.skipped = outcome == "failed", outcome == "skipped"
        if wasxfail is not None:
            self.wasxfail = wasxfail


def test_outcomes_tell_expected_failures_and_unexpected_passes_with_the_reason():
    out = {}
    for r in (Rep("setup", "passed"), Rep("call", "skipped", "reason: no fencing"), Rep("teardown", "passed")):
        session.record_outcome(out, r)
    assert out["t::x"] == {"outcome": "xfailed", "duration_s": 3.0, "message": "no fencing"}
    out = {}
    session.record_outcome(out, Rep("call", "passed", "no fencing"))
    assert out["t::x"]["outcome"] == "xpassed"
    session.record_outcome(out, Rep("teardown", "failed"))      # the audit after it still counts
    assert out["t::x"]["outcome"] == "error"


# ---------------------------------------------------------------- the runner

FAKE_PYTEST = textwrap.dedent("""\
    # stands in for pytest: prints a collection line, writes a run directory, exits as told
    import pathlib, shutil, signal, sys, time
    topology, reports, *args = sys.argv[1:]
    opts = dict(a.split("=", 1) for a in args)
    print("collecting ... collected 3 items / 1 deselected / 2 selected", flush=True)
    print("tests/scenarios/test_x.py::test_a ", end="", flush=True)
    if "--wait-for-sigint" in opts:
        try:
            print("ready", flush=True)
            time.sleep(30)
        except KeyboardInterrupt:
            print("cleaning up", flush=True)
    if opts.get("--results"):
        d = pathlib.Path(reports) / f"20261122-100000-{topology}"
        d.mkdir(parents=True)
        shutil.copy(opts["--results"], d / "results.json")
    sys.exit(int(opts.get("--exit", 0)))
    """)


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "fake_pytest.py"
    script.write_text(FAKE_PYTEST)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, outcome in (("red", "failed"), ("green", "passed")):
        results.write(run_doc("x", [scenario("t.py::test_a", outcome, message="[call] E   AssertionError: no"),
                                    scenario("t.py::test_b", "passed")]), docs / f"{name}.json")

    def command(topology, reports_dir, args):
        return [sys.executable, str(script), topology, str(reports_dir), *args]
    return command, docs


class Out:
    """The job's stdout; calls `on` once when a marker appears in it."""
    def __init__(self, marker=b"", on=None):
        self.data, self.marker, self.on = b"", marker, on

    def write(self, b):
        self.data += b
        if self.on and self.marker in self.data:
            on, self.on = self.on, None
            on()

    def flush(self):
        pass


def test_the_job_runs_every_topology_past_a_failing_one_and_summarises_all(tmp_path, fake):
    command, docs = fake
    out = Out()
    code = job.main([f"ha-2node:--results={docs / 'red.json'} --exit=1",
                     "os-ap-2node:--exit=3",                               # crashes before results.json
                     f"os-aa-2node:--results={docs / 'green.json'}"], tmp_path / "reports", ["-k=x"], command, out)
    assert code == 1
    job_dir = next((tmp_path / "reports").glob("job-*"))
    record = json.loads((job_dir / "job.json").read_text())
    assert [t["exit_code"] for t in record["topologies"]] == [1, 3, 0]
    assert [t["selected"] for t in record["topologies"]] == [2, 2, 2]
    # the topology's own args before the job-wide ones (after `--`), so those win in pytest
    assert record["topologies"][0]["command"][-2:] == ["--exit=1", "-k=x"]
    summary = json.loads((job_dir / "job-summary.json").read_text())
    assert [t["status"] for t in summary["topologies"]] == ["failed", "crashed", "passed"]
    assert summary["topologies"][2]["counts"]["passed"] == 2
    assert (job_dir / "job-summary.md").is_file()
    text = out.data.decode()
    assert text.count("collected 3 items") == 3                           # the children's output went through
    assert "job summary: 3 topologies" in text and "job FAILED: ha-2node failed, os-ap-2node crashed" in text
    # rebuilt later from the directory alone: the same summary
    rebuilt = jobsummary.build(*jobsummary.records_from_dirs([job_dir]))
    assert [t["counts"] for t in rebuilt["topologies"]] == [t["counts"] for t in summary["topologies"]]


def test_an_interrupt_reaches_the_running_session_and_stops_the_job(tmp_path, fake):
    command, docs = fake
    before = signal.getsignal(signal.SIGINT)    # SIG_IGN when run in the background (nohup ... &)
    out = Out(b"ready", lambda: os.kill(os.getpid(), signal.SIGINT))
    code = job.main([f"ha-2node:--wait-for-sigint=1 --results={docs / 'green.json'} --exit=2", "os-ap-2node"],
                    tmp_path, [], command, out)
    assert code == 128 + signal.SIGINT
    assert b"cleaning up" in out.data                                      # the child got it and cleaned up
    summary = json.loads(next(tmp_path.glob("job-*/job-summary.json")).read_text())
    assert summary["interrupted"] == "SIGINT"
    assert [t["status"] for t in summary["topologies"]] == ["interrupted", "not run"]
    assert summary["topologies"][0]["counts"]["passed"] == 2               # what ran is still reported
    assert signal.getsignal(signal.SIGINT) == before                       # handlers restored


def test_job_arguments():
    assert job.parse_spec("os-aa-3node:--probe-interval=1.0 -k 'kill or freeze'") == job.Spec(
        "os-aa-3node", ["--probe-interval=1.0", "-k", "kill or freeze"])
    assert job.parse_spec("ha-2node") == job.Spec("ha-2node", [])
    with pytest.raises(job.JobError, match="--reports-dir is the job's option"):
        job.check_args(["-k", "x", "--reports-dir=/tmp/x"])
    assert cli._split_pytest_args(["job", "a", "b", "--", "-k", "x", "--", "y"]) == (["job", "a", "b"],
                                                                                   ["-k", "x", "--", "y"])
    assert cli._split_pytest_args(["report", "table", "--"]) == (["report", "table", "--"], [])
    assert job.selected_count(b"collecting ... collected 12 items\n") == 12
    assert job.selected_count(b"collected 12 items / 10 deselected\n") == 2
    assert job.selected_count(b"collected 12 items / 10 dese") is None       # not a whole line yet


def test_job_summary_command_rebuilds_and_exits_like_the_job(two_runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["job-summary", str(two_runs), "--out", str(tmp_path / "out")])
    assert e.value.code == 1
    printed = capsys.readouterr().out
    assert "failures and errors (2):" in printed and (tmp_path / "out" / "job-summary.md").is_file()


def test_bring_up_is_a_phase_of_its_own_whether_the_first_scenario_records_phases_or_not(tmp_path):
    with_phases = run_doc("ha-2node", [scenario("t.py::test_a", "passed", 60.0, phases={"setup": 40.0, "fault": 5.0})])
    without = run_doc("os-ap-2node", [scenario("t.py::test_agent", "passed", 200.0),
                                      scenario("t.py::test_b", "passed", 30.0, phases={"setup": 0.5, "fault": 9.0})])
    for doc, seconds in ((with_phases, 35.0), (without, 180.0)):
        doc["run"]["timings"] = {"bring_up_s": seconds}
    write_run(tmp_path, "ha-2node", with_phases)
    write_run(tmp_path, "os-ap-2node", without)
    ha, ap = jobsummary.build(*jobsummary.records_from_dirs([tmp_path]))["topologies"]
    # counted once: out of the first scenario's setup when it recorded phases
    assert ha["phases"] == {"bring_up": 35.0, "setup": 5.0, "fault": 5.0}
    assert ap["phases"] == {"bring_up": 180.0, "setup": 0.5, "fault": 9.0}
