"""What the writers of the writes scenarios cost the host, printed: the host's busy CPU (all
cores, from /proc/stat) over a window with no writers, then over the same window with the
writers running (the API services' side included), the writers' own client CPU, their call
rate, and the latency of their calls (from the recorded history, saved beside the figures).

    python benchmarks/writers_cost.py --topology os-aa-2node --seconds 90
    python benchmarks/writers_cost.py --topology os-ap-2node --keep     # reuse `harness up --keep`

No fault is injected: this is the steady-state load the writers add to every scenario.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import topology  # noqa: E402
from harness.history import History  # noqa: E402
from harness.openstack.writers import Writers  # noqa: E402
from harness.run import ClusterRun  # noqa: E402
from harness.writes import operations  # noqa: E402


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]                     # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float) -> float:
    """Cores busy on average over the next `seconds` (2.0 = both of a 2-core host)."""
    b0, t0 = cpu_ticks()
    time.sleep(seconds)
    b1, t1 = cpu_ticks()
    return round(os.cpu_count() * (b1 - b0) / max(t1 - t0, 1), 3)


def latency(history) -> dict:
    ops = operations(history)
    done = [o for o in ops if o.completed_at is not None]
    per_obj = {}
    for obj in sorted({o.obj for o in done}):
        d = sorted(o.duration for o in done if o.obj == obj)
        per_obj[obj] = {"calls": len(d), "median_s": round(statistics.median(d), 3),
                        "p95_s": round(d[int(0.95 * (len(d) - 1))], 3), "max_s": round(d[-1], 3)}
    outcomes = {k: sum(1 for o in ops if o.outcome == k) for k in ("ok", "fail", "unknown")}
    return {"outcomes": outcomes, "per_object": per_obj}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--topology", default="os-aa-2node")
    p.add_argument("--seconds", type=float, default=90.0, help="length of each window (without, then with)")
    p.add_argument("--interval", type=float, default=3.0, help="each writer's pause between calls (the scenarios': 3)")
    p.add_argument("--keep", action="store_true", help="use (or leave) the kept cluster of `harness up --keep`")
    args = p.parse_args()
    try:
        topo = topology.load_named(args.topology)
    except topology.TopologyError as e:
        p.error(str(e))
    if not topo.openstack:
        p.error(f"topology {topo.name} has no OpenStack control plane: nothing to write to")
    out_dir = Path("reports") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}-writers-{topo.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    run = ClusterRun(topo, keep=args.keep, log=lambda m: None)
    history = History("writers-cost", {"topology": topo.name})
    try:
        run.up()
        cp = run.provisioner.control_plane
        time.sleep(10)                               # let the bring-up's own work die down
        idle = busy_cores(args.seconds)
        writers = Writers(cp, history, "bench", interval=args.interval).start()
        try:
            loaded = busy_cores(args.seconds)
        finally:
            writers.stop()
        cost = writers.cost()
        verdict = writers.verdict(target_s=120)
        left = writers.cleanup()
    finally:
        history.save(out_dir / "writers.jsonl")
        if not args.keep:
            run.down()
    figures = {"topology": topo.name, "window_s": args.seconds, "host_busy_cores_idle": idle,
               "host_busy_cores_with_writers": loaded, "writers_cost_cores": round(loaded - idle, 3),
               **cost, "latency": latency(history), "verdict": verdict.line(), "left_behind": left}
    (out_dir / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"history: {out_dir / 'writers.jsonl'}")


if __name__ == "__main__":
    main()
