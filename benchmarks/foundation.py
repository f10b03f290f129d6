"""Foundation figures, printed: image build cold/warm, bring-up time (for OpenStack
topologies: until every API answers through the VIP), VIP failover and client downtime
after a hard kill (median of N kills, each from a recorded history), memory per node.

    python benchmarks/foundation.py --topology ha-2node --kills 5 [--cold]
    python benchmarks/foundation.py --topology os-ap-2node --kills 3
    python benchmarks/foundation.py --backend docker --backend vagrant --kills 5

--cold removes the backend's cached images (Docker: the node images; Vagrant: its boxes,
built again from the Docker layers) so the build is measured from scratch. With several
--backend, each runs in turn (one cluster at a time) and a table sets their figures side by
side. Every failover figure comes from probe samples (interval stated) kept under reports/bench-*/.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import topology  # noqa: E402
from harness.backends import BACKENDS, get_platform  # noqa: E402
from harness.faults import Nemesis  # noqa: E402
from harness.history import History  # noqa: E402
from harness.run import ClusterRun  # noqa: E402
from harness.scenario import Scenario  # noqa: E402


def build_times(topo, cold: bool, backend: str) -> dict:
    platform = get_platform(backend)
    if cold:
        platform.remove_images()
    t = time.monotonic()
    first = platform.ensure_images(topo.layers, log=lambda m: None)
    first_s = time.monotonic() - t
    t = time.monotonic()
    platform.ensure_images(topo.layers, log=lambda m: None)
    return {"first_s": round(first_s, 1), "built": [r.tag for r in first if r.built],
            "per_image_s": {r.tag: round(r.seconds, 1) for r in first},
            "warm_s": round(time.monotonic() - t, 2)}


def one_kill(run, out_dir: Path, i: int, interval: float) -> dict:
    cluster = run.cluster
    history = History(f"kill-{i}", {"topology": run.topology.name})
    sc = Scenario(f"kill-{i}", cluster, history, Nemesis(cluster, run.provisioner, history), interval=interval)
    holder = cluster.vip_holder()
    sc.start_probes()
    try:
        sc.baseline()
        fault = sc.nemesis.node(holder).kill()
        sc.wait_recovered(since=fault.started_at)
        result = sc.analyse(fault, node=holder)
    finally:
        sc.stop_probes()
        sc.nemesis.heal_all()
        history.save(out_dir / f"kill-{i}.jsonl")
    cluster.wait_settled(timeout=180 * run.backend.wait_factor)    # TCG VMs settle slower
    downs = {p: d["downtime_s"] for p, d in result["downtime"].items()}
    # a client that never came back within the wait has no downtime figure: the kill's worst is
    # then "longer than watched" (None), never the largest of the others
    return {"holder": holder, "vip_move_s": result["vip"]["public"]["move_s"], "downtime_s": downs,
            "worst_downtime_s": None if None in downs.values() else max(downs.values(), default=None),
            "watched_s": round(result["analysed_at"] - fault.started_at, 1)}


def median_of(kills: list[dict], key: str) -> dict:
    """Median (the lower middle one of an even count) and range over the kills, a kill without
    the figure (the VIP never moved, a client never came back) counting as longer than any."""
    values = sorted((k[key] if k[key] is not None else math.inf) for k in kills)
    if not values:
        return {"median": None, "range": None, "missing": 0}
    def finite(v):          # JSON has no infinity
        return None if v == math.inf else v
    return {"median": finite(statistics.median_low(values)), "range": [finite(values[0]), finite(values[-1])],
            "missing": sum(1 for v in values if v == math.inf)}


def exec_cost(run, n: int = 20) -> dict:
    """Seconds one command in a node costs from the harness (`true`, n times)."""
    node, took = run.topology.nodes[0].name, []
    for _ in range(n):
        t = time.monotonic()
        run.backend.exec(node, ["true"], timeout=30)
        took.append(time.monotonic() - t)
    return {"median_s": round(statistics.median(took), 4), "max_s": round(max(took), 4), "n": n}


def measure(topo, backend: str, args, out_dir: Path) -> dict:
    get_platform(backend).check_host()
    figures = {"backend": backend, "topology": topo.name, "probe_interval_s": args.interval,
               "images": build_times(topo, args.cold, backend)}
    run = ClusterRun(topo, backend=backend, log=lambda m: None)
    try:
        run.up()
        figures["bring_up_s"] = round(run.timings.bring_up_s, 1)
        figures["create_s"] = round(run.timings.create_s, 1)
        figures["exec"] = exec_cost(run)
        time.sleep(5)    # let memory settle after start
        figures["memory_mib"] = {n.name: round(run.backend.memory_bytes(n.name) / 2**20, 1)
                                 for n in run.topology.nodes}
        kills = [one_kill(run, out_dir / backend, i, args.interval) for i in range(args.kills)]
    finally:
        run.down()
    figures["kills"] = kills
    for key in ("vip_move_s", "worst_downtime_s"):
        m = median_of(kills, key)
        figures[f"median_{key}"], figures[f"range_{key}"], figures[f"missing_{key}"] = m["median"], m["range"], m["missing"]
    return figures


def _median_cell(f: dict, key: str):
    """The median, and how many kills had no figure (not back within the wait)."""
    missing = f.get(f"missing_{key}")
    if not missing:
        return f[f"median_{key}"]
    return f"{f[f'median_{key}'] if f[f'median_{key}'] is not None else '>watch'} ({missing} never)"


ROWS = (("image/box build, first (s)", lambda f: f["images"]["first_s"]),
        ("image/box build, warm (s)", lambda f: f["images"]["warm_s"]),
        ("bring-up (s)", lambda f: f["bring_up_s"]), ("  of which nodes created (s)", lambda f: f["create_s"]),
        ("one exec (median s)", lambda f: f["exec"]["median_s"]),
        ("VIP move after a kill (median s)", lambda f: _median_cell(f, "vip_move_s")),
        ("worst client downtime (median s)", lambda f: _median_cell(f, "worst_downtime_s")),
        ("memory per node (max MiB)", lambda f: max(f["memory_mib"].values())))


def table(results: list[dict]) -> str:
    lines = [f"{'':36}" + "".join(f"{r['backend']:>16}" for r in results)]
    for label, get in ROWS:
        lines.append(f"{label:36}" + "".join(f"{get(r) if get(r) is not None else '-':>16}" for r in results))
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--topology", default="ha-2node")
    p.add_argument("--backend", action="append", choices=BACKENDS,
                   help="repeat to compare backends (default: docker)")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args()
    try:
        topo = topology.load_named(args.topology)
    except topology.TopologyError as e:
        p.error(str(e))
    out_dir = Path("reports") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{topo.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = [measure(topo, backend, args, out_dir) for backend in dict.fromkeys(args.backend or ["docker"])]
    (out_dir / "figures.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(table(results))
    print(f"histories: {out_dir}")


if __name__ == "__main__":
    main()
