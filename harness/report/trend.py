"""Figures over many runs (e.g. nightlies): one chart per topology, scenario and
fault, with each probe's downtime, the full recovery and the VIP move over time."""
from __future__ import annotations

import datetime as dt
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib import rc_context
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from . import compare, results, timeline
from .html import Raw, esc, page, table


@dataclass
class Run:
    path: Path
    when: float
    doc: dict


@dataclass
class Series:
    """One (topology, scenario, fault): metric -> [(run time, value)]."""
    topology: str
    test: str
    fault: str
    points: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.topology}: {compare.short(self.test)}: {self.fault}"


def find(directory: str | Path) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*.json") if "results" in p.name)


def load_runs(directory: str | Path) -> tuple[list[Run], list[str]]:
    """Usable runs, oldest first, and one warning line per file that was skipped."""
    directory = Path(directory)
    if not directory.is_dir():
        raise results.ResultsError(f"{directory}: no such directory")
    runs, skipped = [], []
    for path in find(directory):
        try:
            doc = results.load(path)
        except results.ResultsError as e:
            skipped.append(f"skipped {e}")
            continue
        runs.append(Run(path, doc["run"]["started_wall"] or doc["generated_wall"], doc))
    if not runs:
        raise results.ResultsError(f"{directory}: no usable results files"
                                   + (f" ({len(skipped)} skipped; first: {skipped[0]})" if skipped else ""))
    return sorted(runs, key=lambda r: r.when), skipped


def series(runs: list[Run]) -> list[Series]:
    out: dict[tuple, Series] = {}
    for run in runs:
        topo = run.doc["run"]["topology"] or "?"
        for s in run.doc["scenarios"]:
            for key, r in compare.fault_keys(s).items():
                ser = out.setdefault((topo, s["test"], key), Series(topo, s["test"], key))
                for metric, value in compare.metrics(r).items():
                    if metric != "verdict":
                        ser.points.setdefault(metric, []).append((run.when, value))
    return [out[k] for k in sorted(out)]


def chart(ser: Series) -> bytes:
    """SVG: one line per metric; a run where it never recovered is a red × on top."""
    fig = Figure(figsize=(11, 3.2))
    ax = fig.add_subplot()
    numbers = [v for pts in ser.points.values() for _, v in pts if isinstance(v, (int, float))]
    top = max(numbers, default=1.0) * 1.15 or 1.0
    for metric, pts in ser.points.items():
        xs = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t, v in pts if isinstance(v, (int, float))]
        ys = [v for _, v in pts if isinstance(v, (int, float))]
        ax.plot(xs, ys, marker="o", markersize=3, label=metric)
        never = [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t, v in pts if v == compare.NEVER]
        if never:
            ax.scatter(never, [top] * len(never), marker="x", color=timeline.FAILED, zorder=4,
                       label=f"{metric}: never recovered")
    ax.set_ylim(0, top * 1.05)
    whens = sorted({t for pts in ser.points.values() for t, _ in pts})
    if len(whens) == 1:          # one run: a day around it, not matplotlib's default of years
        mid = dt.datetime.fromtimestamp(whens[0], dt.timezone.utc)
        ax.set_xlim(mid - dt.timedelta(hours=12), mid + dt.timedelta(hours=12))
    ax.set_ylabel("seconds", fontsize=8)
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(color="#eeeeee")
    ax.set_title(ser.title, fontsize=9, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.subplots_adjust(left=0.06, right=0.78, bottom=0.16, top=0.88)
    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "ha-harness-trend"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def values_table(ser: Series, runs: list[Run]) -> str:
    metrics = list(ser.points)
    by_run = {m: dict(ser.points[m]) for m in metrics}
    rows = [[when_text(r.when), *(compare.fmt(by_run[m].get(r.when, "—")) for m in metrics)]
            for r in runs if any(r.when in by_run[m] for m in metrics)]
    return table(["run started", *metrics], rows, numeric=set(range(1, len(metrics) + 1)))


def when_text(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def runs_table(runs: list[Run], out_dir: Path) -> str:
    rows = []
    for r in runs:
        res = [x for s in r.doc["scenarios"] for x in s["results"]]
        failed = sum(not x["verdict"]["passed"] for x in res)
        link = Path(os.path.relpath(r.path, out_dir)).as_posix()
        rows.append([when_text(r.when), r.doc["run"]["topology"], r.doc["run"]["run_id"],
                     f"{len(res) - failed}/{len(res)} passed", Raw(f'<a href="{esc(link)}">{esc(link)}</a>')])
    return table(["run started", "topology", "run id", "fault verdicts", "results"], rows)


def render(runs: list[Run], skipped: list[str], out_dir: Path) -> str:
    parts = [f"<h1>HA failover trend ({len(runs)} runs)</h1>",
             "<p class=muted>per scenario and fault: each probe's downtime (fault start → steady answers), "
             "full recovery and VIP move, from each run's results.json</p>",
             runs_table(runs, out_dir)]
    parts += [f'<p class="warn">{esc(s)}</p>' for s in skipped]
    for ser in series(runs):
        parts.append(f"<h2>{esc(ser.title)}</h2>"
                     f'<img class="timeline" alt="{esc(ser.title)}" src="{timeline.data_uri(chart(ser))}">'
                     + values_table(ser, runs))
    return page("HA failover trend", "".join(parts))


def write(directory: str | Path, out: str | Path) -> tuple[Path, list[str]]:
    runs, skipped = load_runs(directory)
    out = Path(out)
    out.write_text(render(runs, skipped, out.parent.resolve()))
    return out, skipped
