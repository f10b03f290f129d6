"""The availability timeline of one scenario, drawn from its history alone.

One lane per client probe (every sample at its start time: green answered, red
failed), one per VIP (which node held it), one per resource (where Pacemaker ran
it) and one for quorum; fault windows are shaded across all lanes the way Jepsen
shades nemesis activity, with the applied/heal instants marked.
"""
from __future__ import annotations

import base64
import io
import time

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from ..writes import operations
from .recheck import completed, nodes_seen

OK, FAILED, FAULT, FAULT_EDGE, NONE = "#2ca02c", "#d62728", "#ff7f0e", "#b35900", "#d9d9d9"
NODE_COLOURS = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22", "#7f7f7f")
SEVERAL = "#555555"
WRITE_COLOURS = {"ok": OK, "fail": FAILED, "unknown": "#000000"}     # black: no node wears it


# ---------------------------------------------------------------- lanes (pure data)

def history_end(history) -> float:
    return max((completed(e) for e in history.events()), default=0.0)


def steps(points: list[tuple[float, object]], end: float) -> list[tuple[float, float, object]]:
    """[(t, state)] -> [(from, to, state)], equal neighbours merged, the last held until `end`."""
    segments: list[list] = []
    for t, state in sorted(points, key=lambda p: p[0]):
        if segments and segments[-1][2] == state:
            continue
        if segments:
            segments[-1][1] = t
        segments.append([t, end, state])
    return [tuple(s) for s in segments if s[1] > s[0]]


def sample_times(history, probe: str) -> tuple[list[float], list[float]]:
    samples = history.samples(probe)
    return [s["t"] for s in samples if s["ok"]], [s["t"] for s in samples if not s["ok"]]


def vip_segments(history, vip: str) -> list[tuple]:
    return steps([(e["t"], tuple(e["holders"])) for e in history.events("vip", vip=vip)], history_end(history))


def placement_segments(history, rid: str) -> list[tuple]:
    # A sample without placement means crm_mon did not answer: shown as unknown (None).
    points = [(e["t"], tuple(e["placement"].get(rid, ())) if "placement" in e else None)
              for e in history.events("cluster")]
    return steps(points, history_end(history))


def quorum_segments(history) -> list[tuple]:
    points = [(e["t"], (e["quorum"], e.get("dc")) if "quorum" in e else None) for e in history.events("cluster")]
    return steps(points, history_end(history))


def resources(history) -> list[str]:
    return sorted({rid for e in history.events("cluster") for rid in e.get("placement", {})})


def vips(history) -> list[str]:
    return sorted({e["vip"] for e in history.events("vip")})


def client_probes(history) -> list[str]:
    return history.probes()


def write_objects(history) -> list[str]:
    return sorted({e["obj"] for e in history.events("write")})


# ---------------------------------------------------------------- drawing

class _Lanes:
    """Lane bookkeeping: lanes are added top to bottom."""

    def __init__(self, ax, count: int, span: float, colours: dict):
        self.ax, self.count, self.span, self.colours = ax, count, span, colours
        self.labels: list[str] = []

    def next_y(self, label: str) -> int:
        self.labels.append(label)
        return self.count - len(self.labels)

    def segment(self, y: int, t0: float, t1: float, colour: str, text: str = "", hatch: str | None = None):
        self.ax.broken_barh([(t0, t1 - t0)], (y - 0.32, 0.64), facecolors=colour, edgecolor="white",
                            linewidth=0.5, hatch=hatch)
        if text and (t1 - t0) > self.span * 0.05:
            self.ax.text((t0 + t1) / 2, y, text, ha="center", va="center", fontsize=7,
                         color="black" if colour == NONE else "white")

    def nodes_colour(self, nodes: tuple) -> str:
        if not nodes:
            return NONE
        return self.colours.get(nodes[0], SEVERAL) if len(nodes) == 1 else SEVERAL


def _probe_lane(lanes: _Lanes, history, probe: str, results: list) -> None:
    y = lanes.next_y(probe)
    ok, failed = sample_times(history, probe)
    lanes.ax.scatter(ok, [y] * len(ok), marker="|", s=140, c=OK, linewidths=1.3, zorder=3)
    lanes.ax.scatter(failed, [y] * len(failed), marker="|", s=140, c=FAILED, linewidths=1.3, zorder=3)
    for r in results:
        d = r["downtime"].get(probe)
        if not d or d["first_failure"] is None:
            continue
        end = d["recovered_at"] if d["recovered_at"] is not None else lanes.ax.get_xlim()[1]
        label = f"down {d['downtime_s']:.2f} s" if d["recovered"] else "never recovered"
        lanes.ax.plot([d["first_failure"], end], [y + 0.38] * 2, color=FAILED, lw=2, zorder=3)
        lanes.ax.text((d["first_failure"] + end) / 2, y + 0.44, label, ha="center", va="bottom",
                      fontsize=7, color=FAILED)


def _write_lane(lanes: _Lanes, ops: list, obj: str) -> None:
    """Each write of one object type as a bar from its call to its answer: its latency, in
    the colour of its outcome (an answer never received runs to the end of the picture)."""
    y = lanes.next_y(f"writes: {obj}")
    end = lanes.ax.get_xlim()[1]
    mine = [o for o in ops if o.obj == obj]
    for o in mine:
        t1 = o.completed_at if o.completed_at is not None else end
        lanes.ax.broken_barh([(o.invoked_at, max(t1 - o.invoked_at, end * 0.002))], (y - 0.25, 0.5),
                             facecolors=WRITE_COLOURS.get(o.outcome, SEVERAL), linewidth=0, zorder=3)
    slowest = max(mine, key=lambda o: (o.completed_at or end) - o.invoked_at, default=None)
    if slowest is not None:
        took = (slowest.completed_at or end) - slowest.invoked_at
        lanes.ax.text(slowest.invoked_at, y + 0.3, f"slowest {took:.1f} s ({slowest.op}, {slowest.outcome})",
                      ha="left", va="bottom", fontsize=7, color="#333333")


def _vip_lane(lanes: _Lanes, history, vip: str) -> None:
    y = lanes.next_y(f"VIP {vip} holder")
    for t0, t1, holders in vip_segments(history, vip):
        several = len(holders) > 1
        lanes.segment(y, t0, t1, FAILED if several else lanes.nodes_colour(holders),
                      "+".join(holders) or "none", hatch="//" if several or not holders else None)


def _placement_lane(lanes: _Lanes, history, rid: str) -> None:
    y = lanes.next_y(f"{rid} on")
    for t0, t1, nodes in placement_segments(history, rid):
        if nodes is None:
            lanes.segment(y, t0, t1, "white", "no answer", hatch="..")
        else:
            lanes.segment(y, t0, t1, lanes.nodes_colour(nodes), "+".join(nodes) or "stopped",
                          hatch=None if nodes else "//")


def _quorum_lane(lanes: _Lanes, history) -> None:
    y = lanes.next_y("quorum (DC)")
    for t0, t1, state in quorum_segments(history):
        if state is None:
            lanes.segment(y, t0, t1, "white", "no answer", hatch="..")
        else:
            quorate, dc = state
            lanes.segment(y, t0, t1, OK if quorate else FAILED, f"{'yes' if quorate else 'NO'} ({dc or '-'})")


def _fault_windows(ax, schedule: list, end: float) -> None:
    top = blended_transform_factory(ax.transData, ax.transAxes)
    for w in schedule:
        start = w["start"] if w["start"] is not None else 0.0
        stop = w["end"] if w["end"] is not None else end
        ax.axvspan(start, stop, color=FAULT, alpha=0.18, zorder=0, lw=0)
        ax.axvline(start, color=FAULT_EDGE, lw=1.0, zorder=1)
        if w["end"] is not None:
            ax.axvline(w["end"], color=FAULT_EDGE, lw=1.0, zorder=1)
        for mark, style in (("applied", "--"), ("heal", ":")):
            if w.get(mark) is not None:
                ax.axvline(w[mark], color=FAULT_EDGE, lw=1.0, ls=style, zorder=1)
        ax.text(start, 1.01, f"{w['fault']} {w['target'] or ''}".strip(), transform=top, fontsize=8,
                color=FAULT_EDGE, ha="left", va="bottom")


def _legend(fig, colours: dict, writes: bool = False) -> None:
    handles = [Line2D([], [], color=OK, marker="|", ls="", markersize=10, label="probe answered"),
               Line2D([], [], color=FAILED, marker="|", ls="", markersize=10, label="probe failed"),
               Patch(facecolor=FAULT, alpha=0.3, label="fault window (start..end)"),
               Line2D([], [], color=FAULT_EDGE, ls="--", label="fault applied"),
               Line2D([], [], color=FAULT_EDGE, ls=":", label="heal requested"),
               *(Patch(facecolor=c, label=n) for n, c in colours.items()),
               Patch(facecolor=NONE, hatch="//", label="none / stopped"),
               Patch(facecolor=FAILED, hatch="//", label="several holders")]
    if writes:
        handles += [Patch(facecolor=c, label=f"write {outcome} (call to answer)") for outcome, c in WRITE_COLOURS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=7, frameon=False)


def probe_intervals(history) -> str:
    """The stated sampling intervals: the resolution of every figure on the picture."""
    parts = [f"{p['name']} every {p['interval_s']:g} s" for p in history.meta.get("probes", [])
             if p.get("interval_s") is not None]
    if not parts and history.meta.get("probe_interval_s") is not None:
        parts = [f"client probes every {history.meta['probe_interval_s']:g} s"]
    return "sampling: " + (", ".join(parts) if parts else "interval not recorded")


def figure(history, schedule: list, results: list, title: str) -> Figure:
    probes, vip_names, rids = client_probes(history), vips(history), resources(history)
    written = write_objects(history)
    count = len(probes) + len(written) + len(vip_names) + len(rids) + (1 if rids else 0)
    fig = Figure(figsize=(12, 1.9 + 0.46 * max(count, 1)))
    ax = fig.add_subplot()
    end = history_end(history)
    ax.set_xlim(0, max(end, 1.0) * 1.01)
    ax.set_ylim(-0.7, max(count, 1) - 0.2)
    colours = {n: NODE_COLOURS[i % len(NODE_COLOURS)] for i, n in enumerate(nodes_seen(history))}
    lanes = _Lanes(ax, count, ax.get_xlim()[1], colours)
    for probe in probes:
        _probe_lane(lanes, history, probe, results)
    ops = operations(history) if written else []
    for obj in written:
        _write_lane(lanes, ops, obj)
    for vip in vip_names:
        _vip_lane(lanes, history, vip)
    for rid in rids:
        _placement_lane(lanes, history, rid)
    if rids:
        _quorum_lane(lanes, history)
    _fault_windows(ax, schedule, end)
    ax.set_yticks([count - 1 - i for i in range(len(lanes.labels))], lanes.labels, fontsize=8)
    ax.set_axisbelow(True)
    ax.grid(axis="x", color="#eeeeee")
    ax.spines[["top", "right"]].set_visible(False)
    t0 = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(history.t0_wall))
    ax.set_xlabel(f"seconds since the scenario's history started (t=0 at {t0})", fontsize=8)
    fig.suptitle(f"{title}\n{probe_intervals(history)}", fontsize=9, x=0.01, ha="left")
    _legend(fig, colours, writes=bool(written))
    fig.subplots_adjust(left=0.11, right=0.99, top=1 - 0.75 / fig.get_figheight(),
                        bottom=0.95 / fig.get_figheight())
    return fig


def svg(history, schedule: list, results: list, title: str) -> bytes:
    """The timeline as SVG; text stays text, ids salted so output is reproducible."""
    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "ha-harness", "font.family": "DejaVu Sans"}):
        figure(history, schedule, results, title).savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def data_uri(svg_bytes: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg_bytes).decode("ascii")
