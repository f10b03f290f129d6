"""results.json schema 1 and the recheck of figures, on real recorded runs
(tests/unit/data/reports: copies of a 2-node and a 3-node run, histories untouched)."""
import copy
import json
from pathlib import Path

import jsonschema
import pytest

from harness.history import History
from harness.report import recheck, results, session

DATA = Path(__file__).parent / "data" / "reports"
RUNS = sorted(DATA.glob("*/results.json"))
TWO, THREE = (DATA / "20261121-062850-ha-2node" / "results.json", DATA / "20261121-063219-ha-3node" / "results.json")


def faults(path):
    doc = results.load(path)
    for s in doc["scenarios"]:
        history = results.load_history(path, s)
        for r in s["results"]:
            yield s, history, r


def test_examples_are_real_runs_of_both_topologies():
    assert [results.load(p)["run"]["topology"] for p in RUNS] == ["ha-2node", "ha-3node"]
    assert sum(len(s["results"]) for p in RUNS for s in results.load(p)["scenarios"]) == 10


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.parent.name)
def test_example_results_validate_against_the_shipped_schema(path):
    schema = json.loads((Path(results.__file__).parent / "results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(path.read_text()), schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.parent.name)
def test_every_figure_is_reproduced_by_its_history(path):
    for s, history, r in faults(path):
        assert r["window"]["reproduced"], (s["test"], r["fault_id"])
        assert recheck.mismatches(history, r) == [], (s["test"], r["fault_id"])


@pytest.mark.parametrize("path", RUNS, ids=lambda p: p.parent.name)
def test_history_checksums_and_schedule_come_from_the_history(path):
    for s in results.load(path)["scenarios"]:
        hpath = results.history_path(path, s)
        assert results.sha256_file(hpath) == s["history_sha256"]
        assert s["schedule"] == History.load(hpath).fault_windows()
        assert s["probe_interval_s"] == 0.25


def test_analysis_ran_before_the_history_ended_and_the_window_says_when():
    # The kill scenario was analysed while probes still ran: the whole history has one
    # more sample than the recorded figures, so only the inferred cut-off reproduces them.
    s = next(s for s in results.load(TWO)["scenarios"] if s["test"].endswith("moves_vip_to_survivor"))
    history, r = results.load_history(TWO, s), s["results"][0]
    assert any("samples: recorded 18, history gives 19" in m for m in recheck.mismatches_in(history, r, None, None))
    assert r["window"] == {"start": 2.0504, "end": None, "until": 6.5337, "reproduced": True}
    done = sorted(recheck.completed(e) for e in history.samples("http:web") if e["t"] >= 2.0504)
    assert done[17] == 6.5337       # the 18th completed sample: exactly what analyse() saw


def test_a_figure_the_history_does_not_support_is_reported():
    s, history, r = next(f for f in faults(THREE) if f[2]["fault"] == "node-kill")
    forged = copy.deepcopy(r)
    forged["downtime"]["http:web"]["downtime_s"] = 1.0
    forged["vip"]["public"]["move_s"] = 0.5
    problems = recheck.mismatches(history, forged)
    assert "http:web: downtime_s: recorded 1.0, history gives 5.0" in problems
    assert any(p.startswith("VIP public: move_s: recorded 0.5") for p in problems)
    assert recheck.infer_window(history, forged)["reproduced"] is False


def test_upgrade_of_the_legacy_file_gives_the_committed_example(tmp_path):
    for path in RUNS:
        doc = results.upgrade(path.parent / "results.legacy.json", path)
        committed = results.load(path)
        for d in (doc, committed):
            d.pop("generated_wall"), d.pop("generated_by")
        assert doc == committed


def test_build_keeps_histories_relative_and_adds_scenarios_without_history(tmp_path):
    legacy = json.loads((TWO.parent / "results.legacy.json").read_text())
    entry = legacy["scenarios"][0]
    entry["history"] = str(TWO.parent / "histories" / Path(entry["history"]).name)
    outcomes = {entry["test"]: {"outcome": "passed", "duration_s": 9.5, "message": None},
                "t.py::test_skipped": {"outcome": "skipped", "duration_s": 0.0, "message": "needs 3 nodes"}}
    doc = results.build(results.run_info(topology="ha-2node"), [entry], TWO.parent, outcomes)
    results.validate(doc)
    assert doc["scenarios"][0]["history"] == "histories/" + Path(entry["history"]).name
    assert doc["scenarios"][0]["outcome"] == "passed"
    assert doc["scenarios"][1] == {**doc["scenarios"][1], "test": "t.py::test_skipped", "outcome": "skipped",
                                   "history": None, "results": []}


def write(tmp_path, doc, name="results.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=2), "schema_version 2 is not supported (this harness reads 1)"),
    (lambda d: d.pop("schema_version"), "no schema_version (written before schema 1"),
    (lambda d: d["scenarios"][0]["results"][0].pop("verdict"), "invalid at scenarios/0/results/0: 'verdict' is a required property"),
    (lambda d: d["run"].update(exit_status="one"), "invalid at run/exit_status: 'one' is not of type"),
    (lambda d: d["scenarios"][0]["results"][0]["downtime"]["http:web"].update(samples=-1), "invalid at scenarios/0/results/0/downtime/http:web/samples"),
])
def test_invalid_documents_are_named_in_one_line(tmp_path, mutate, message):
    doc = json.loads(TWO.read_text())
    mutate(doc)
    p = write(tmp_path, doc)
    with pytest.raises(results.ResultsError) as e:
        results.load(p)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(results.ResultsError, match=r"nope.json: no such file$"):
        results.load(tmp_path / "nope.json")
    with pytest.raises(results.ResultsError, match=r"not JSON \(line 1 column 2"):
        results.load(write(tmp_path, "{oops"))
    with pytest.raises(results.ResultsError, match="top level is a JSON list"):
        results.load(write(tmp_path, "[]"))


def test_a_missing_history_is_named(tmp_path):
    doc = results.load(TWO)
    with pytest.raises(results.ResultsError, match="history of tests/scenarios/.* is missing"):
        results.load_history(write(tmp_path, doc), doc["scenarios"][0])


def test_run_dir_names_never_collide(tmp_path):
    first = session.choose_run_dir(tmp_path, "ha-2node")
    first.mkdir()
    second = session.choose_run_dir(tmp_path, "ha-2node")
    assert second != first and second.name.startswith(first.name) and first.name.endswith("-ha-2node")


class Rep:
    def __init__(self, when, outcome, duration=1.0, text=""):
        self.nodeid, self.when, self.duration, self.longreprtext = "t::x", when, duration, text
        self.failed, self.skipped = outcome == "failed", outcome == "skipped"
        self.longrepr = ("f", 1, "Skipped: needs 3 nodes") if self.skipped else text


def test_outcomes_fold_the_phases():
    out = {}
    for r in (Rep("setup", "passed"), Rep("call", "failed", 2.0, "AssertionError: x"), Rep("teardown", "passed")):
        session.record_outcome(out, r)
    assert out["t::x"] == {"outcome": "failed", "duration_s": 4.0, "message": "[call] AssertionError: x"}
    out = {}
    session.record_outcome(out, Rep("setup", "skipped", 0.0))
    assert out["t::x"]["outcome"] == "skipped" and out["t::x"]["message"] == "Skipped: needs 3 nodes"


def test_junit_properties_carry_verdict_downtime_and_vip_move():
    from harness.report.session import junit_properties
    r = {"fault": "node-kill", "probe_interval_s": 1.0, "full_recovery_s": 7.861,
         "verdict": {"passed": True},
         "downtime": {"http:keystone": {"downtime_s": 2.0, "recovered": True},
                      "os:nova": {"downtime_s": 120.0, "recovered": False}},
         "vip": {"public": {"move_s": 2.787}}}
    assert junit_properties([r]) == [
        ("node-kill.verdict", "PASS"), ("node-kill.probe_interval_s", "1.0"), ("node-kill.full_recovery_s", "7.86"),
        ("node-kill.downtime_s.http:keystone", "2.00"), ("node-kill.downtime_s.os:nova", "never"),
        ("node-kill.vip_move_s.public", "2.79")]
    assert junit_properties([r, r])[0] == ("node-kill#1.verdict", "PASS")
