"""Compare two runs: real figures of the recorded 2-node and 3-node runs (same
scenarios: the 3-node failover took 5 s where the 2-node one took 2.5 s)."""
import copy
from pathlib import Path

import pytest

from harness import cli
from harness.report import compare, results

DATA = Path(__file__).parent / "data" / "reports"
TWO, THREE = (DATA / "20261121-062850-ha-2node" / "results.json", DATA / "20261121-063219-ha-3node" / "results.json")
KILL = "tests/scenarios/test_node_failures.py::test_kill_vip_holder_moves_vip_to_survivor"


def row(rows, test, metric):
    return next(r for r in rows if r.scenario == test and r.metric == metric)


def kill_result(doc):
    return next(s for s in doc["scenarios"] if s["test"] == KILL)["results"][0]


def test_real_slower_failover_is_a_regression():
    rows = compare.compare(results.load(TWO), results.load(THREE))
    r = row(rows, KILL, "downtime http:web")
    assert (r.base, r.new, r.status, r.change) == (2.5, 5.0, compare.REGRESSION, "+2.500 s (+100.0%)")
    assert row(rows, KILL, "VIP public move").status == compare.REGRESSION
    assert row(rows, KILL, "verdict").status == compare.SAME
    port = row(rows, "tests/scenarios/test_measurement.py::test_measured_downtime_equals_known_port_block",
               "downtime http:web")
    assert (port.base, port.new, port.status) == (5.0, 4.995, compare.BETTER)      # jitter, not a change
    added = {r.scenario for r in rows if r.status == compare.ADDED}
    assert added == {"tests/scenarios/test_node_failures.py::test_kill_one_of_three_keeps_quorum",
                     "tests/scenarios/test_node_failures.py::test_isolated_node_loses_quorum_and_stops_resources"}


def test_the_other_way_round_is_an_improvement():
    rows = compare.compare(results.load(THREE), results.load(TWO))
    assert row(rows, KILL, "downtime http:web").status == compare.IMPROVED
    assert not compare.regressions(rows)


@pytest.mark.parametrize("threshold_s, threshold_pct, regressed", [
    (1.0, 20, True), (2.5, 20, False), (1.0, 100, False), (2.49, 99.9, True)])
def test_both_thresholds_must_be_exceeded(threshold_s, threshold_pct, regressed):
    rows = compare.compare(results.load(TWO), results.load(THREE), threshold_s, threshold_pct)
    assert (row(rows, KILL, "downtime http:web").status == compare.REGRESSION) is regressed


def test_never_recovering_is_always_a_regression():
    base, new = results.load(TWO), copy.deepcopy(results.load(TWO))
    d = kill_result(new)["downtime"]["http:web"]
    d.update(recovered=False, downtime_s=None, recovered_at=None)
    kill_result(new)["full_recovery_s"] = None
    rows = compare.compare(base, new, threshold_s=1e9, threshold_pct=1e9)
    assert row(rows, KILL, "downtime http:web").status == compare.REGRESSION
    assert row(rows, KILL, "full recovery").new == compare.NEVER
    assert row(rows, KILL, "downtime http:web").change == "now never recovers"
    back = row(compare.compare(new, base), KILL, "downtime http:web")
    assert (back.status, back.change) == (compare.IMPROVED, "recovers now")


def test_verdict_flip_and_lost_figures_are_regressions():
    base, new = results.load(TWO), copy.deepcopy(results.load(TWO))
    kill_result(new)["verdict"]["passed"] = False
    freeze = next(s for s in new["scenarios"] if s["test"].endswith("test_freeze_vip_holder"))
    freeze["results"], freeze["outcome"] = [], "failed"
    rows = compare.regressions(compare.compare(base, new))
    assert [(r.metric, r.change or r.new) for r in rows] == [("verdict", "PASS → FAIL"), ("figures", "none (test failed)")]


def test_judge_edge_cases():
    assert compare.judge("downtime p", 0.0, 2.0, 1.0, 20) == (compare.REGRESSION, "+2.000 s")   # from no outage
    assert compare.judge("downtime p", 10.0, 11.5, 1.0, 20)[0] == compare.WORSE                 # 15%: noise
    assert compare.judge("VIP v move", 2.0, None, 1.0, 20) == (compare.CHANGED, "no longer moves")
    assert compare.judge("full recovery", compare.NEVER, compare.NEVER, 1.0, 20)[0] == compare.SAME


def test_cli_exit_codes_and_html(tmp_path, capsys):
    out = tmp_path / "cmp.html"
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(TWO), str(THREE), "--html", str(out)])
    assert e.value.code == 1
    printed = capsys.readouterr().out
    assert "note: comparing topology ha-2node with ha-3node" in printed
    assert "6 regression(s) beyond 1 s and 20%" in printed
    assert out.read_text().count(">REGRESSION<") == 6
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(TWO), str(TWO)])
    assert e.value.code == 0 and "no figure changed" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(TWO), str(THREE), "--threshold-s", "3"])
    assert e.value.code == 0


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"), ("not json", "not JSON (line 1 column 1"),
    ('{"schema_version": 7}', "schema_version 7 is not supported")])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, problem):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(TWO), str(bad)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and f"error: {bad}: {problem}" in err


AB = Path(__file__).parent / "data" / "ab"     # apart from reports/: the trend tests read all of it


def test_slowed_corosync_token_is_flagged_by_the_cli(capsys):
    """Real A/B runs: ha-2node (token 1000 ms) against ha-2node-slow (token 5000 ms)."""
    base = AB / "20261121-075216-ha-2node" / "results.json"
    new = AB / "20261121-075305-ha-2node-slow" / "results.json"
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(base), str(new)])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "downtime http:web" in out and "REGRESSION" in out
    rows = compare.compare(results.load(base), results.load(new))
    assert row(rows, KILL, "downtime http:web").new > row(rows, KILL, "downtime http:web").base + 5
    # and the same run against itself is no regression
    assert not compare.regressions(compare.compare(results.load(base), results.load(base)))
