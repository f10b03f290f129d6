"""report.html from real results + histories: self-contained, every scenario with
its verdict, downtime table, recheck line and timeline."""
import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from harness import cli
from harness.report import html, results

DATA = Path(__file__).parent / "data" / "reports"
THREE = DATA / "20261121-063219-ha-3node" / "results.json"


@pytest.fixture
def run_copy(tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(THREE.parent, dest)
    return dest / "results.json"


def test_report_has_every_scenario_verdict_table_and_timeline():
    doc = results.load(THREE)
    page = html.render(doc, THREE)
    for s in doc["scenarios"]:
        assert f'id="{html.anchor(s["test"])}"' in page
    assert page.count('<img class="timeline"') == len(doc["scenarios"]) == 6
    assert page.count(">PASS<") == 2 * 6              # summary table + each fault's heading
    assert page.count("every figure above recomputed from the history") == 6
    assert "<td class=num>5.00 s</td><td>120 s</td>" in page       # kill: downtime against the target
    assert "probe interval 0.25 s" in page


def test_report_is_self_contained():
    page = html.render(results.load(THREE), THREE)
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script" not in page and "<link" not in page
    assert all(src.startswith("data:image/svg+xml;base64,") for src in re.findall(r'<img[^>]* src="([^"]+)"', page))
    for href in re.findall(r'href="([^"#][^"]*)"', page):      # the raw histories, beside the report
        assert (THREE.parent / href).is_file()


def test_figures_the_history_contradicts_are_flagged(run_copy):
    doc = json.loads(run_copy.read_text())
    doc["scenarios"][1]["results"][0]["downtime"]["http:web"]["downtime_s"] = 0.5
    run_copy.write_text(json.dumps(doc))
    page = html.render(results.load(run_copy), run_copy)
    assert page.count("⚠ the history does not reproduce these figures") == 1
    assert "http:web: downtime_s: recorded 0.5, history gives 5.0" in page


def test_failed_and_skipped_scenarios_show_why(run_copy):
    doc = json.loads(run_copy.read_text())
    doc["scenarios"][0].update(outcome="failed", message="[call] AssertionError: <boom>")
    doc["scenarios"].append({**copy.deepcopy(doc["scenarios"][0]), "test": "t.py::test_skip", "outcome": "skipped",
                             "message": "needs 3 nodes", "history": None, "history_sha256": None,
                             "schedule": [], "results": []})
    run_copy.write_text(json.dumps(doc))
    page = html.render(results.load(run_copy), run_copy)
    assert "<pre>[call] AssertionError: &lt;boom&gt;</pre>" in page
    assert 'class="fail">failed<' in page and 'class="other">skipped<' in page and "needs 3 nodes" in page


def test_cli_rebuilds_the_report_offline(run_copy, capsys):
    cli.main(["report", "html", str(run_copy)])
    out = run_copy.parent / "report.html"
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_text() == html.render(results.load(run_copy), run_copy)
    elsewhere = run_copy.parent.parent / "elsewhere" / "r.html"
    elsewhere.parent.mkdir()
    cli.main(["report", "html", str(run_copy), "--out", str(elsewhere)])
    assert 'href="../run/histories/' in elsewhere.read_text()


def test_cli_names_a_missing_history(run_copy, capsys):
    victim = next((run_copy.parent / "histories").glob("*freeze*"))
    victim.unlink()
    with pytest.raises(SystemExit) as e:
        cli.main(["report", "html", str(run_copy)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: {victim}: history of tests/scenarios/test_node_failures.py::test_freeze_vip_holder is missing\n"


def test_a_history_changed_after_the_run_is_flagged(run_copy):
    victim = next((run_copy.parent / "histories").glob("*freeze*"))
    victim.write_text(victim.read_text() + "\n")          # same events, different bytes
    page = html.render(results.load(run_copy), run_copy)
    assert page.count("the history file changed since results.json was written") == 1
    assert page.count("every figure above recomputed from the history") == 6    # the figures still hold


def test_full_recovery_wording():
    doc = results.load(THREE)
    rejoin = next(s for s in doc["scenarios"] if s["test"].endswith("rejoins_and_cluster_settles"))["results"][0]
    assert html.full_recovery(rejoin) == "none needed (no probe failed)"
    rejoin = copy.deepcopy(rejoin)
    rejoin["downtime"]["http:web"]["recovered"] = False
    assert html.full_recovery(rejoin) == "never (a probe never recovered)"


def test_writes_section_names_each_lost_object_and_the_writers_cost():
    from harness.writes import WriteVerdict
    v = WriteVerdict(acknowledged=12, lost=1, unknown=2, unknown_applied=1, unknown_not_applied=1)
    v._problem("lost", "volume", "hw-volume-x-3", "vol-3", None, "acknowledged create not found")
    w = {**v.to_dict(), "interval_s": 3.0,
         "cost": {"writers": 5, "calls": 40, "calls_per_s": 1.6, "client_cpu_share": 0.021}}
    text = html.writes_section({"writes": w})
    assert "acknowledged writes 12, lost 1" in text and "FAIL" in text
    assert "hw-volume-x-3" in text and "vol-3" in text
    assert "1.6 calls/s" in text and "client CPU 2.1% of a core" in text
    assert html.writes_section({}) == ""


def test_writes_section_says_when_nothing_could_be_read_back():
    text = html.writes_section({"writes": {"readback_failed": "OperationalError: (2003, refused)",
                                           "acknowledged": 57, "interval_s": 3.0, "cost": {}}})
    assert "read-back impossible" in text and "57 acknowledged writes could not be checked" in text
    assert "FAIL" in text
