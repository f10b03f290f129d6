"""The evacuation of one lost node, per instance: a bar per instance split at its stages
(node lost, fenced, Masakari's notification, service disabled, evacuate call, host changed,
ACTIVE elsewhere, migration done), the recovery target as a line. Drawn from the verdict
stored in the results, which harness.evacuation computed from the history."""
from __future__ import annotations

import io

from matplotlib import rc_context
from matplotlib.figure import Figure

from ..evacuation import STAGES
from .html import esc, seconds, table
from .timeline import data_uri

# one colour per stage, in STAGES order; a bar's segment takes the colour of the stage it ends at
COLOURS = ("#7f7f7f", "#8c564b", "#e7ba52", "#bcbd22", "#dbdb8d", "#9467bd", "#c5b0d5", "#1f77b4", "#17becf",
           "#2ca02c", "#98df8a", "#aec7e8", "#c7c7c7")


def segments(stages: dict) -> list[tuple[float, float, str]]:
    """(start, width, stage) pieces of one instance's bar, in time order."""
    out, prev = [], 0.0
    for stage, t in sorted(stages.items(), key=lambda kv: (kv[1], STAGES.index(kv[0]))):
        out.append((prev, max(0.0, t - prev), stage))
        prev = max(prev, t)
    return out


def svg(evac: dict) -> bytes:
    rows = evac["instances"]
    fig = Figure(figsize=(9, 0.45 * len(rows) + 2.6))
    ax = fig.add_subplot()
    used = set()
    for y, inst in enumerate(rows):
        for start, width, stage in segments(inst["stages"]):
            colour = COLOURS[STAGES.index(stage) % len(COLOURS)]
            ax.barh(y, width, left=start, color=colour, edgecolor="white", height=0.6,
                    label=stage if stage not in used else None)
            used.add(stage)
        if inst["recovered_s"] is None:
            ax.text(0, y, "  not recovered: " + inst["state"], va="center", fontsize=8, color="#d62728")
    ax.axvline(evac["target_s"], color="#d62728", linestyle="--", linewidth=1, label=f"target {evac['target_s']:.0f} s")
    ax.set_yticks(range(len(rows)), [i["name"] for i in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds after the fault started")
    ax.set_title(f"evacuation of {evac['source']}'s instances", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=4, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "ha-harness", "font.family": "DejaVu Sans"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def section(evac: dict) -> str:
    """The report's block for one evacuation: the line, a table per instance, the chart."""
    rows = [[i["name"], i["id"], seconds(i["recovered_s"], "not recovered"), i["new_host"] or "—",
             i["state"] or "—", i["duplicate_on"] or "—"] for i in evac["instances"]]
    dominant = evac.get("dominant_stage")
    parts = [f"<h4>Evacuation of {esc(evac['source'])}</h4>",
             f"<p><b>{esc(evac['line'])}</b> · watched every {evac.get('watch_interval_s', '?')} s "
             f"(times are exact to one interval)"
             + (f" · longest stage: {esc(dominant[0])} ({dominant[1]:.1f} s, median)" if dominant else "") + "</p>"]
    if evac["problems"]:
        parts.append('<ul class="bad">' + "".join(f"<li>{esc(p)}</li>" for p in evac["problems"]) + "</ul>")
    parts.append(table(["instance", "id", "to ACTIVE elsewhere", "new host", "stuck in", "also ran on"], rows,
                       numeric={2}))
    if evac["instances"]:
        parts.append(f'<img class="timeline" alt="evacuation of {esc(evac["source"])}" '
                     f'src="{data_uri(svg(evac))}">')
    return "".join(parts)
