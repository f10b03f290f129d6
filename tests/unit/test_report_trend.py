"""Trend over a directory of results files (the recorded runs, one per topology)."""
import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.report import results, trend

DATA = Path(__file__).parent / "data" / "reports"
KILL = "tests/scenarios/test_node_failures.py::test_kill_vip_holder_moves_vip_to_survivor"


def test_runs_are_found_in_subdirectories_oldest_first_and_legacy_files_skipped():
    runs, skipped = trend.load_runs(DATA)
    assert [r.doc["run"]["topology"] for r in runs] == ["ha-2node", "ha-3node"]
    assert runs[0].when < runs[1].when
    assert len(skipped) == 2 and all("results.legacy.json: no schema_version" in s for s in skipped)


def test_series_per_topology_scenario_and_fault():
    runs, _ = trend.load_runs(DATA)
    by_key = {(s.topology, s.test, s.fault): s for s in trend.series(runs)}
    assert len(by_key) == 10
    kill2 = by_key[("ha-2node", KILL, "node-kill #1")].points
    assert kill2["downtime http:web"] == [(runs[0].when, 2.5)]
    assert kill2["full recovery"] == [(runs[0].when, 2.732)]
    assert kill2["VIP public move"] == [(runs[0].when, 2.233)]


def test_two_nightlies_make_one_line(tmp_path):
    for name in ("night1", "night2"):
        shutil.copytree(DATA / "20261121-063219-ha-3node", tmp_path / name)
    doc = results.load(tmp_path / "night2" / "results.json")
    doc["run"]["started_wall"] += 86400
    results.write(doc, tmp_path / "night2" / "results.json")
    runs, _ = trend.load_runs(tmp_path)
    ser = next(s for s in trend.series(runs) if s.test == KILL)
    assert [v for _, v in ser.points["downtime http:web"]] == [5.0, 5.0]
    page = trend.render(runs, [], tmp_path)
    assert page.count('<img class="timeline"') == 6 and "night2/results.json" in page


def test_cli_trend(tmp_path, capsys):
    out = tmp_path / "trend.html"
    cli.main(["report", "trend", str(DATA), "--out", str(out)])
    cap = capsys.readouterr()
    assert cap.out == f"wrote {out}\n" and cap.err.count("warning: skipped") == 2
    assert out.read_text().count("data:image/svg+xml;base64,") == 10


def test_cli_trend_on_nothing_usable(tmp_path, capsys):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "trend", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"error: {tmp_path}: no usable results files (1 skipped")
