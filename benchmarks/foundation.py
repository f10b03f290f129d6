"""Foundation figures, printed: image build cold/warm, bring-up time (for OpenStack
topologies: until every API answers through the VIP), VIP failover and client downtime
after a hard kill (median of N kills, each from a recorded history), memory per node.

    python benchmarks/foundation.py --topology ha-2node --kills 5 [--cold]
    python benchmarks/foundation.py --topology os-ap-2node --kills 3

--cold removes the cached node images first so the build is measured from scratch.
Every failover figure comes from probe samples (interval stated) kept under reports/bench-*/.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import topology  # noqa: E402
from harness.backends import get_platform  # noqa: E402
from harness.faults import Nemesis  # noqa: E402
from harness.history import History  # noqa: E402
from harness.run import ClusterRun  # noqa: E402
from harness.scenario import Scenario  # noqa: E402


def build_times(topo, cold: bool) -> dict:
    platform = get_platform("docker")
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
    cluster.wait_settled(timeout=180)
    downs = {p: d["downtime_s"] for p, d in result["downtime"].items()}
    return {"holder": holder, "vip_move_s": result["vip"]["public"]["move_s"],
            "downtime_s": downs, "worst_downtime_s": max((v for v in downs.values() if v is not None), default=None)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--topology", default="ha-2node")
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--interval", type=float, default=0.1)
    args = p.parse_args()
    try:
        topo = topology.load_named(args.topology)
    except topology.TopologyError as e:
        p.error(str(e))
    get_platform("docker").check_host()
    out_dir = Path("reports") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}-{topo.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {"topology": topo.name, "probe_interval_s": args.interval, "images": build_times(topo, args.cold)}
    run = ClusterRun(topo, log=lambda m: None)
    try:
        run.up()
        figures["bring_up_s"] = round(run.timings.bring_up_s, 1)
        time.sleep(5)    # let memory settle after start
        figures["memory_mib"] = {n.name: round(run.backend.memory_bytes(n.name) / 2**20, 1)
                                 for n in run.topology.nodes}
        kills = [one_kill(run, out_dir, i, args.interval) for i in range(args.kills)]
    finally:
        run.down()
    figures["kills"] = kills
    for key in ("vip_move_s", "worst_downtime_s"):
        values = [k[key] for k in kills if k[key] is not None]
        figures[f"median_{key}"] = statistics.median(values) if values else None
        figures[f"range_{key}"] = [min(values), max(values)] if values else None
    (out_dir / "figures.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(f"histories: {out_dir}")


if __name__ == "__main__":
    main()
