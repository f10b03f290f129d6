"""A/B statistics over several runs per side. The documents are the real recorded
ha-2node run (corosync token 1000 ms, 2.5 s downtime) and ha-2node-slow run (token
5000 ms, 11 s), copied into several runs with probe-interval jitter (±0.25 s steps)."""
import copy
import itertools
import json
import math
from pathlib import Path

import pytest

from harness import cli
from harness.report import abcompare, abstats, results
from harness.report.compare import NEVER

AB = Path(__file__).parent / "data" / "ab"
FAST = results.load(AB / "20261121-075216-ha-2node" / "results.json")
SLOW = results.load(AB / "20261121-075305-ha-2node-slow" / "results.json")
KILL = "tests/scenarios/test_node_failures.py::test_kill_vip_holder_moves_vip_to_survivor"
JITTER = (0.0, 0.25, -0.25, 0.5, 0.0)
OTHER_JITTER = (0.25, 0.0, 0.0, -0.25, 0.25)
INF = math.inf


# ---------------------------------------------------------------- the statistics

def brute_force_p(a, b):
    """Reference: mid-ranks and every split of the pooled sample, no DP."""
    pooled = a + b
    rank = [sum(x < v for x in pooled) + (sum(x == v for x in pooled) + 1) / 2 for v in pooled]
    centre = len(a) * (len(pooled) + 1) / 2
    observed = abs(sum(rank[:len(a)]) - centre)
    splits = list(itertools.combinations(rank, len(a)))
    return sum(abs(sum(s) - centre) >= observed - 1e-9 for s in splits) / len(splits)


@pytest.mark.parametrize("a, b, p", [
    ([1, 2, 3], [4, 5, 6], 0.1), ([4, 5, 6], [1, 2, 3], 0.1),
    ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], 2 / 252), ([1, 2, 3, 4], [5, 6, 7, 8], 2 / 70),
    ([2.5] * 4, [2.5] * 4, 1.0), ([1, 2], [1, 2], 1.0), ([], [1], 1.0)])
def test_exact_p_values(a, b, p):
    assert abstats.mann_whitney_p(a, b) == pytest.approx(p)


@pytest.mark.parametrize("a, b", [
    ([1, 2, 2, 3], [2, 3, 4, INF]), ([2.5, 2.5, 2.75], [2.5, 3.0, 3.0, 3.0]),
    ([1, 1, 1, 2, 2], [2, 2, 3, 3, 3]), ([INF, 2.5, 2.5], [INF, INF, 11.0]), ([1, 5, 9], [2, 6, 10, 11])])
def test_ties_and_never_use_the_exact_permutation_distribution(a, b):
    assert abstats.mann_whitney_p(a, b) == pytest.approx(brute_force_p(a, b))
    assert abstats.mann_whitney_p(a, b) == pytest.approx(abstats.mann_whitney_p(b, a))


def test_min_runs_for_a_confidence():
    assert [abstats.min_runs_for(c) for c in (0.8, 0.9, 0.95, 0.99)] == [3, 4, 4, 5]
    with pytest.raises(ValueError):
        abstats.min_runs_for(1.0)


def test_hodges_lehmann_shift():
    assert abstats.hodges_lehmann([1, 2, 3], [4, 5, 6]) == 3
    assert abstats.hodges_lehmann([2.5, 2.5], [11.0, 11.5]) == 8.75
    assert abstats.hodges_lehmann([INF, 2.0], [INF, 2.0]) == 0.0           # inf - inf counts as 0
    assert abstats.hodges_lehmann([2.0], [INF, INF, 3.0]) == INF


def test_bootstrap_interval_is_reproducible_and_covers_the_shift():
    a, b = [2.5, 2.75, 2.25, 3.0, 2.5], [11.0, 11.25, 10.75, 11.5, 10.5]
    lo, hi = abstats.bootstrap_ci(a, b, 0.95)
    assert lo <= 8.5 <= hi and lo > 7
    assert abstats.bootstrap_ci(a, b, 0.95) == (lo, hi)
    wide = ([1.3, 2.9, 2.1, 4.4, 3.2, 1.7], [5.2, 3.3, 6.8, 4.1, 7.7, 2.6])
    assert abstats.bootstrap_ci(*wide, 0.9, seed=7) == abstats.bootstrap_ci(*wide, 0.9, seed=7)
    assert abstats.bootstrap_ci(*wide, 0.9, seed=7) != abstats.bootstrap_ci(*wide, 0.9)
    assert abstats.bootstrap_ci([1.0], [INF], 0.95) == (INF, INF)


# ---------------------------------------------------------------- documents of several runs

def kill(doc):
    return next(s for s in doc["scenarios"] if s["test"] == KILL)


def runs(doc, jitter=JITTER):
    """Copies of a real run, the downtime (and so the full recovery) shifted by a few probe intervals."""
    out = []
    for d in jitter:
        run = copy.deepcopy(doc)
        r = kill(run)["results"][0]
        r["downtime"]["http:web"]["downtime_s"] += d
        r["full_recovery_s"] += d
        out.append(run)
    return out


def patched(docs, sha="ab" * 32):
    for d in docs:
        d["run"]["resource_agents"][0]["sha256"] = sha
    return docs


def figure(cmp, metric):
    return next(r for r in cmp.figures if r.scenario == KILL and r.metric == metric)


def outcome(cmp):
    return next(r for r in cmp.outcomes if r.scenario == KILL)


def test_slower_corosync_token_is_a_significant_slowdown():
    cmp = abcompare.compare_sides(runs(FAST), patched(runs(SLOW)))
    down = figure(cmp, "downtime http:web")
    assert down.a == [2.5, 2.75, 2.25, 3.0, 2.5] and down.b == [11.0, 11.25, 10.75, 11.5, 11.0]
    assert down.p == pytest.approx(2 / 252) and down.shift == 8.5 and down.verdict == abcompare.SLOWER
    assert down.interval[0] > 7
    assert figure(cmp, "VIP public move").verdict == abcompare.SLOWER
    assert outcome(cmp).status == abcompare.SAME
    assert len(cmp.regressions()) == 3
    assert "agents differ (the patch): ocf:heartbeat:IPaddr2: stock 62ecd9de0965 -> abababababab" in cmp.notes
    assert "warning: topology differs between A and B: ha-2node -> ha-2node-slow" in cmp.notes
    # and the other way round it is faster, not a regression
    back = abcompare.compare_sides(runs(SLOW), runs(FAST))
    assert figure(back, "downtime http:web").verdict == abcompare.FASTER and not back.regressions()


def test_same_agent_with_jitter_shows_no_difference():
    cmp = abcompare.compare_sides(runs(FAST), runs(FAST, OTHER_JITTER))
    assert {r.verdict for r in cmp.figures} == {abcompare.NO_DIFF}
    assert figure(cmp, "downtime http:web").p > 0.5
    assert not cmp.regressions()
    assert cmp.notes == ["note: the agents are the same on A and B"]


def test_small_significant_shift_is_below_the_minimum_effect():
    cmp = abcompare.compare_sides(runs(FAST), runs(FAST, [d + 0.25 for d in (-0.25, 0.0, 0.25, 0.5, 0.75)]),
                                  confidence=0.8, min_effect_s=1.0)
    down = figure(cmp, "downtime http:web")
    assert down.p < 0.2 and down.verdict == abcompare.NO_DIFF and "under 1 s" in down.reason


def test_failing_scenario_on_b_is_a_regression_whatever_the_timings():
    b = runs(FAST)
    kill(b[3])["outcome"] = "failed"
    cmp = abcompare.compare_sides(runs(FAST), b)
    assert outcome(cmp).b == ["passed"] * 3 + ["failed", "passed"]
    assert outcome(cmp).status == abcompare.REGRESSION
    assert figure(cmp, "downtime http:web").verdict == abcompare.NO_DIFF
    assert cmp.regressions() == [outcome(cmp)]
    assert abcompare.compare_sides(b, runs(FAST)).regressions() == []
    assert outcome(abcompare.compare_sides(b, runs(FAST))).status == abcompare.FIXED
    assert outcome(abcompare.compare_sides(b, b)).status == abcompare.BOTH_FAIL


def test_scenario_not_run_on_b_is_a_regression():
    b = runs(FAST)
    b[0]["scenarios"] = [s for s in b[0]["scenarios"] if s["test"] != KILL]
    cmp = abcompare.compare_sides(runs(FAST), b)
    assert outcome(cmp).b[0] == abcompare.NOT_RUN and outcome(cmp).status == abcompare.REGRESSION
    assert len(figure(cmp, "downtime http:web").b) == 4


def test_never_recovering_on_b_is_slower():
    b = runs(FAST)
    r = kill(b[2])["results"][0]
    r["downtime"]["http:web"].update(recovered=False, downtime_s=None, recovered_at=None)
    r["full_recovery_s"] = None
    cmp = abcompare.compare_sides(runs(FAST), b)
    down = figure(cmp, "downtime http:web")
    assert down.b[2] == NEVER and down.verdict == abcompare.SLOWER
    assert down.reason == "never recovers in 1 of 5 B runs"
    assert figure(cmp, "full recovery").verdict == abcompare.SLOWER
    assert "never" in abcompare.text_table(cmp)
    json.dumps(abcompare.to_json(cmp), allow_nan=False)       # inf is written as a string, not Infinity
    assert figure(abcompare.compare_sides(b, runs(FAST)), "downtime http:web").verdict == abcompare.FASTER


def test_vip_that_did_not_move_is_shown_but_not_counted():
    a = runs(FAST)
    kill(a[1])["results"][0]["vip"]["public"]["move_s"] = None
    cmp = abcompare.compare_sides(a, patched(runs(SLOW)))
    move = figure(cmp, "VIP public move")
    assert move.a[1] is None and move.verdict == abcompare.SLOWER
    assert "n=4 +1 did not move" in abcompare.text_table(cmp)
    assert "did not move" in abcompare.html_page(cmp, "A", "B")


def test_vip_that_moved_on_neither_side_is_no_difference():
    # seen in the worked example: a service fault never moves the VIP, on A or on B
    a, b = runs(FAST), patched(runs(SLOW))
    for doc in a + b:
        kill(doc)["results"][0]["vip"]["public"]["move_s"] = None
    move = figure(abcompare.compare_sides(a, b), "VIP public move")
    assert move.verdict == abcompare.NO_DIFF and move.reason == "did not move on either side"
    assert "did not move n=5" in abcompare.text_table(abcompare.compare_sides(a, b))
    for doc in b:
        kill(doc)["results"][0]["vip"]["public"]["move_s"] = 3.0
    assert figure(abcompare.compare_sides(a, b), "VIP public move").reason == "moved on B only"


def test_notes_name_what_differs_besides_the_agents():
    a, b = runs(FAST)[:3], patched(runs(FAST)[:3])
    a[1]["run"]["packages"]["corosync"] = "3.1.8-1"
    b[0]["run"]["timings"]["images"][1]["tag"] = "ha-harness/cluster:0123456789ab"
    kill(b[1])["probe_interval_s"] = 0.5
    b[2]["run"]["resource_agents"][0]["sha256"] = "cd" * 32
    notes = abcompare.compare_sides(a, b).notes
    assert notes == [
        "warning: image tags differ between the runs of B: ha-harness/cluster: 0123456789ab / 27f201de1bb9",
        "warning: image tags differ between A and B: ha-harness/cluster: 27f201de1bb9 -> 0123456789ab / 27f201de1bb9",
        "warning: package versions differ between the runs of A: corosync: 3.1.7-1+deb12u2 / 3.1.8-1",
        "warning: package versions differ between A and B: corosync: 3.1.7-1+deb12u2 / 3.1.8-1 -> 3.1.7-1+deb12u2",
        "warning: probe intervals differ between the runs of B: test_kill_vip_holder_moves_vip_to_survivor: "
        "0.25 s / 0.5 s",
        "warning: probe intervals differ between A and B: test_kill_vip_holder_moves_vip_to_survivor: "
        "0.25 s -> 0.25 s / 0.5 s",
        "warning: agent checksums differ between the runs of B: ocf:heartbeat:IPaddr2: abababababab / cdcdcdcdcdcd",
        "agents differ (the patch): ocf:heartbeat:IPaddr2: stock 62ecd9de0965 -> abababababab / cdcdcdcdcdcd",
        "warning: too few runs for 95% confidence: A 3, B 3; even fully separated sides need 4 runs each "
        "to reach p < 0.05"]


def test_outputs_show_every_value():
    cmp = abcompare.compare_sides(runs(FAST), patched(runs(SLOW)))
    text = abcompare.text_table(cmp)
    assert "2.50 s [2.25–3.00] n=5" in text and "11.00 s [10.75–11.50] n=5" in text and "0.00794" in text
    assert abcompare.summary_line(cmp).startswith("3 regression(s), A 5 run(s) vs B 5 run(s), 95% confidence")
    page = abcompare.html_page(cmp, "stock", "patched", extra_sections=["<h2>gate</h2>"])
    assert "2.25 s, 2.75 s" not in page and "2.50 s, 2.75 s, 2.25 s, 3.00 s, 2.50 s" in page
    assert "11.00 s, 11.25 s, 10.75 s, 11.50 s, 11.00 s" in page and "<h2>gate</h2>" in page
    assert page.count(">slower<") == 3
    doc = abcompare.to_json(cmp)
    assert doc["regressions"] == 3 and doc["figures"][0]["b_spread"] == {
        "median": 11.0, "min": 10.75, "max": 11.5, "n": 5, "did_not_move": 0}


# ---------------------------------------------------------------- loading and the command line

def write_runs(root: Path, docs) -> Path:
    for i, d in enumerate(docs):
        results.write(d, root / f"2026112{i}-000000-run" / "results.json")
    return root


def test_load_runs_from_a_file_a_run_dir_or_a_dir_of_runs(tmp_path):
    root = write_runs(tmp_path / "a", runs(FAST, (0.5, 0.0, 0.25)))
    loaded = abcompare.load_runs(root)
    assert [kill(d)["results"][0]["downtime"]["http:web"]["downtime_s"] for d in loaded] == [3.0, 2.5, 2.75]
    first = sorted(root.iterdir())[0]
    assert len(abcompare.load_runs(first)) == 1 == len(abcompare.load_runs(first / "results.json"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no results.json"):
        abcompare.load_runs(tmp_path / "empty")


def test_cli_compares_directories_of_runs(tmp_path, capsys):
    a = write_runs(tmp_path / "A", runs(FAST))
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(a), str(write_runs(tmp_path / "B", patched(runs(SLOW)))),
                  "--json", str(tmp_path / "c.json"), "--html", str(tmp_path / "c.html")])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "agents differ (the patch)" in out and "3 regression(s)" in out
    assert json.loads((tmp_path / "c.json").read_text())["regressions"] == 3
    assert ">slower<" in (tmp_path / "c.html").read_text()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(a), str(write_runs(tmp_path / "A2", runs(FAST, OTHER_JITTER)))])
    assert e.value.code == 0 and "0 regression(s)" in capsys.readouterr().out


def test_cli_one_run_per_side_is_the_plain_comparison(tmp_path, capsys):
    a = write_runs(tmp_path / "A", runs(FAST)[:1])
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(a), str(AB / "20261121-075305-ha-2node-slow")])
    assert e.value.code == 1 and "regression(s) beyond 1 s and 20%" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "compare", str(a), str(tmp_path / "empty")])
    assert e.value.code == 2 and "empty: no results.json" in capsys.readouterr().err
