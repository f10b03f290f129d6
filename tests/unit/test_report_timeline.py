"""The availability timeline: lanes computed from real histories, and the picture
really shades the fault windows where the history puts them."""
from pathlib import Path

from matplotlib.colors import to_hex

from harness.report import results, timeline

DATA = Path(__file__).parent / "data" / "reports"
THREE = DATA / "20261121-063219-ha-3node" / "results.json"


def scenario(name):
    s = next(s for s in results.load(THREE)["scenarios"] if s["test"].endswith(name))
    return s, results.load_history(THREE, s)


def test_steps_merge_equal_states_and_hold_the_last_until_the_end():
    assert timeline.steps([(0, "a"), (1, "a"), (2, "b"), (3, "a")], 5) == [(0, 2, "a"), (2, 3, "b"), (3, 5, "a")]
    assert timeline.steps([], 5) == []


def test_vip_lane_of_a_killed_holder():
    _, h = scenario("test_kill_vip_holder_moves_vip_to_survivor")
    segs = timeline.vip_segments(h, "public")
    assert [s[2] for s in segs] == [("node1",), (), ("node2",)]
    assert segs[1][:2] == (2.343, 6.843)          # no holder: from the first empty sample to node2's
    assert segs[-1][1] == timeline.history_end(h)


def test_placement_and_quorum_lanes_of_an_isolation():
    _, h = scenario("test_isolated_node_loses_quorum_and_stops_resources")
    assert timeline.resources(h) == ["vip", "web"]
    assert [s[2] for s in timeline.placement_segments(h, "vip")] == [("node2",), (), ("node1",)]
    assert {s[2] for s in timeline.quorum_segments(h)} == {(True, "node3")}   # the majority's view
    assert [s[2] for s in timeline.vip_segments(h, "public")] == [("node2",), ("node1", "node2"), ("node1",)]


def test_picture_shades_each_fault_window_and_marks_applied_and_heal():
    s, h = scenario("test_freeze_vip_holder")
    fig = timeline.figure(h, s["schedule"], s["results"], s["test"])
    ax = fig.axes[0]
    w = s["schedule"][0]
    shaded = [p for p in ax.patches if to_hex(p.get_facecolor()) == timeline.FAULT]
    assert len(shaded) == 1
    span = shaded[0].get_bbox()         # x in data coordinates
    assert (span.x0, span.x1) == (w["start"], w["end"])
    lines = {(round(line.get_xdata()[0], 4), line.get_linestyle()) for line in ax.lines}
    assert {(w["applied"], "--"), (w["heal"], ":"), (w["start"], "-"), (w["end"], "-")} <= lines


def test_samples_are_drawn_at_their_real_times_in_their_colours():
    s, h = scenario("test_kill_vip_holder_moves_vip_to_survivor")
    ax = timeline.figure(h, s["schedule"], s["results"], s["test"]).axes[0]
    ok, failed = ax.collections[0], ax.collections[1]
    samples = h.samples("http:web")
    assert [x for x, _ in failed.get_offsets()] == [e["t"] for e in samples if not e["ok"]]
    assert len(ok.get_offsets()) + len(failed.get_offsets()) == len(samples)
    assert to_hex(failed.get_facecolor()[0]) == timeline.FAILED


def test_svg_states_the_probe_intervals_and_names_the_fault():
    s, h = scenario("test_isolated_node_loses_quorum_and_stops_resources")
    svg = timeline.svg(h, s["schedule"], s["results"], s["test"]).decode()
    assert "http:web every 0.25 s, vip:public every 0.5 s, cluster every 1 s" in svg
    assert "partition node2 | node1,node3" in svg and "down 0.25 s" in svg
    assert svg == timeline.svg(h, s["schedule"], s["results"], s["test"]).decode()   # reproducible
    assert timeline.data_uri(b"<svg/>") == "data:image/svg+xml;base64,PHN2Zy8+"


def test_write_lanes_draw_each_call_from_invoke_to_answer_in_its_outcome_colour():
    from harness.history import History
    from harness.writes import WriteLog
    h = History("w")
    log = WriteLog(h)
    for at, done, outcome in ((1.0, 1.5, "ok"), (2.0, 9.0, "unknown"), (10.0, 10.2, "fail")):
        token = log.invoke("create", "volume", f"k{at}")
        h._events[-1]["t"] = at                         # place the call where the test needs it
        getattr(log, outcome)(token, *(() if outcome == "ok" else ("boom",)))
        h._events[-1]["t"] = done
    assert timeline.write_objects(h) == ["volume"]
    ax = timeline.figure(h, [], [], "writes").axes[0]
    bars = [c for c in ax.collections if c.get_paths() and len(c.get_paths()) == 1]
    drawn = sorted((round(b.get_paths()[0].get_extents().x0, 3), round(b.get_paths()[0].get_extents().width, 3),
                    to_hex(b.get_facecolor()[0])) for b in bars)
    assert drawn == [(1.0, 0.5, timeline.OK), (2.0, 7.0, timeline.WRITE_COLOURS["unknown"]),
                     (10.0, 0.2, timeline.FAILED)]
    assert any("slowest 7.0 s (create, unknown)" in t.get_text() for t in ax.texts)
