from pathlib import Path

from harness.report import results, table

DATA = Path(__file__).parent / "data" / "reports" / "20261121-062850-ha-2node" / "results.json"


def test_one_row_per_fault_and_one_column_per_probe():
    doc = results.load(DATA)
    head, body = table.rows(doc)
    assert head[:3] == ["scenario", "fault", "outcome"] and head[-1] == "VIP move"
    assert len(body) == sum(len(s["results"]) for s in doc["scenarios"])
    kill = next(r for r in body if r[0] == "kill_vip_holder_moves_vip_to_survivor")
    assert kill[1] == "node-kill node1" and kill[3] == "2.50" and kill[-1] == "2.23"
    text = table.markdown(doc)
    assert "probe interval 0.25 s" in text and text.count("\n| ") == len(body) + 1


def test_cells():
    assert table.cell(None) == "-"
    assert table.cell({"recovered": False, "downtime_s": None}) == "never"
    assert table.cell({"recovered": True, "downtime_s": 3.456}) == "3.46"
