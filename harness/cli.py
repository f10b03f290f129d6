"""ha-harness (python -m harness) validate|topologies|up|status|shell|logs|down|gc|host|images|report|job|ab|job-summary"""
from __future__ import annotations

import argparse
import os
import sys
import time

import yaml

from . import ownership, topology as topo_mod
from .backends import BACKENDS, HostNotReady, get_platform
from .ownership import RunBusy, RunLock


def _fail(msg: str, code: int = 2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def _load(path: str):
    try:
        return topo_mod.load_named(path)
    except topo_mod.TopologyError as e:
        _fail(str(e))


def cmd_validate(args):
    t = _load(args.topology)
    print(f"{t.source}: ok ({len(t.nodes)} nodes, {len(t.vips)} VIPs, "
          f"{len(t.resources.primitives)} primitives, subnet {t.subnet})")


def cmd_topologies(args):
    """List the shipped topologies, or print one (a starting point for a file of your own)."""
    if not args.name:
        for name in topo_mod.shipped_names():
            raw = yaml.safe_load((topo_mod.SHIPPED / f"{name}.yaml").read_text())
            print(f"{name:18} {raw.get('description', '')}")
        return
    if args.name not in topo_mod.shipped_names():
        _fail(f"{args.name}: no shipped topology of that name (known: {', '.join(topo_mod.shipped_names())})")
    path = topo_mod.SHIPPED / f"{args.name}.yaml"
    if args.resolved:       # a variant written with `extends`, as one file with everything in it
        sys.stdout.write(f"# {args.name}, with everything it extends merged in\n"
                         + yaml.safe_dump(topo_mod.merged(path), sort_keys=False, width=110))
        return
    sys.stdout.write(path.read_text())


def _platform(args=None):
    """The platform (host, images) of the command's --backend (default: Docker)."""
    return get_platform(getattr(args, "backend", None) or "docker")


def _platforms():
    """Every backend whose runs can be listed here now (Docker's engine answers, libvirtd runs)."""
    return [p for p in map(get_platform, BACKENDS) if p.available()]


def _platform_of(run_id: str):
    return get_platform(_runs()[run_id]["backend"])


def cmd_host(args):
    platform = _platform(args)
    if args.action == "check":
        problems = platform.host_problems()
        for p in problems:
            print(p)
        sys.exit(1 if problems else 0)
    try:
        platform.prepare_host()
    except HostNotReady as e:
        _fail(str(e))


def _ready(args=None):
    try:
        _platform(args).check_host()
    except HostNotReady as e:
        _fail(str(e))


def cmd_images(args):
    _ready(args)
    t = _load(args.topology)
    for r in _platform(args).ensure_images(t.layers, rebuild=args.rebuild):
        print(f"{r.tag}: {'built in %.1fs' % r.seconds if r.built else 'reused'}")


def cmd_up(args):
    _ready(args)
    from .run import ClusterRun
    t = _load(args.topology)
    # default id keep-<topology>: `pytest --keep-cluster` then reuses this cluster
    run = ClusterRun(t, backend=args.backend, run_id=args.run_id, keep=True, lock_wait=args.wait)
    start = time.monotonic()
    try:
        cluster = run.up()
    except RunBusy as e:
        _fail(f"{e}; try again when it is done (or wait longer: --wait SECONDS)")
    except BaseException as e:
        if args.keep_failed:
            _fail(f"bring-up failed ({e}); kept for debugging: python -m harness down {run.run_id}")
        run.keep = False
        removed = run.down()
        _fail(f"bring-up failed ({e}); removed {len(removed)} objects")
    info = run.backend.describe()
    print(f"cluster {t.name} up in {time.monotonic() - start:.1f}s: run {run.run_id}")
    for node, n in info.get("nodes", {}).items():
        print(f"  {node}: {n['ip']} ({n.get('container') or n.get('domain')})")
    for v in run.topology.vips:
        print(f"  VIP {v.name}: {v.ip} on {cluster.vip_holder(v.name)}")
    print(f"  shell: ha-harness shell {run.run_id} {t.nodes[0].name}    ({info.get('shell')})")
    cp = run.provisioner.control_plane
    if cp is not None:
        from .cloudsconf import publish, user_clouds_file
        clouds = publish(run.run_id, cp.clouds_yaml())
        print(f"  OpenStack: openstack --os-cloud {t.name} server list    (cloud {t.name} in "
              f"{user_clouds_file()}; this run's alone: {clouds})")
    print(f"  status: ha-harness status {run.run_id}    logs: ha-harness logs {run.run_id}    "
          f"remove: ha-harness down {run.run_id}")


def _runs():
    """Runs of every available backend, each with its "backend"."""
    return {rid: {**info, "backend": p.name} for p in _platforms() for rid, info in p.runs().items()}


def _ready_for_runs():
    if not _platforms():
        _fail("no backend answers here (no Docker engine, no libvirtd): "
              "run `python -m harness host prepare [--backend vagrant]`")


def _pick_run(run_id: str | None) -> str:
    runs = _runs()
    if run_id:
        if run_id not in runs:
            _fail(f"no harness run {run_id!r} (existing: {', '.join(runs) or 'none'})")
        return run_id
    if not runs:
        _fail("no harness run exists here (start one with `python -m harness up`)")
    if len(runs) > 1:
        _fail(f"{len(runs)} harness runs exist ({', '.join(runs)}): name one")
    return next(iter(runs))


def _state(run_id: str, info: dict) -> tuple[str, str]:
    """(live|kept|crashed, who owns it / why)."""
    holder = RunLock(run_id).holder()
    state = ownership.classify(info["pid"], info["pid_start"], ownership.is_kept(run_id), holder is not None)
    if holder is not None:
        return state, f"in use by {ownership.describe_holder(holder)}"
    if state == ownership.LIVE:
        return state, f"its creator pid {info['pid']} still runs"
    if state == ownership.KEPT:
        return state, "left up on purpose (`up` / --keep-cluster)"
    return state, f"its owner pid {info['pid']} is gone"


def _age(created: str) -> str:
    from datetime import datetime, timezone
    try:
        then = datetime.fromisoformat(created.split(".")[0].rstrip("Z")).replace(tzinfo=timezone.utc)
    except ValueError:
        return "?"
    minutes = int((datetime.now(timezone.utc) - then).total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def cmd_runs(args):
    """Every run here (every backend) with its state, owner and age (what gc would do)."""
    runs = _runs()
    if not runs:
        print("no harness run exists here")
    for run_id, info in sorted(runs.items()):
        state, why = _state(run_id, info)
        print(f"{run_id:24} {state:8} {info['backend']:8} {info['topology'] or '?':14} "
              f"age {_age(info['created']):>7}  {why}")


def cmd_status(args):
    _ready_for_runs()
    from .cluster import Cluster
    runs = _runs()
    if args.run_id is None and len(runs) != 1:
        return cmd_runs(args)
    run_id = _pick_run(args.run_id)
    info = runs[run_id]
    state, why = _state(run_id, info)
    print(f"run {run_id}: {state} ({why})")
    t = _load(info["source"] or info["topology"])
    backend = get_platform(info["backend"]).backend(t, run_id)
    if not backend.exists():
        _fail(f"run {run_id}: nodes are missing (use `python -m harness down {run_id}`)")
    cluster = Cluster(backend)
    s = cluster.state()
    print(f"run {run_id} ({t.name}, {t.subnet}): DC {s.dc}, quorum {'yes' if s.quorum else 'NO'}")
    for n in s.nodes.values():
        flags = [f for f, on in (("online", n.online), ("standby", n.standby), ("UNCLEAN", n.unclean)) if on]
        print(f"  node {n.name}: {', '.join(flags) or 'offline'}")
    for rid in sorted(s.resources):
        where = s.where(rid)
        print(f"  resource {rid}: {', '.join(where) if where else 'Stopped'}")
    for f in s.failures:
        print(f"  failed action: {f.resource} {f.op} on {f.node} rc={f.exitcode} {f.exitreason}")
    for v in t.vips:
        print(f"  VIP {v.name} {v.ip}: held by {cluster.vip_holders(v.ip) or 'no node'}")


def _backend_of(run_id: str):
    """The backend object of an existing run, or a one-line error."""
    info = _runs()[run_id]
    backend = get_platform(info["backend"]).backend(_load(info["source"] or info["topology"]), run_id)
    if not backend.exists():
        _fail(f"run {run_id}: nodes are missing (use `ha-harness down {run_id}`)")
    return backend


def cmd_shell(args):
    """A shell (or one command) on a node of a run: the backend says how to log in."""
    if len(args.target) > 2:
        _fail(f"shell takes [RUN] NODE, got {' '.join(args.target)!r} (a command goes after --)")
    run_arg, args.node = (args.target[0] if len(args.target) == 2 else args.run_id), args.target[-1]
    _ready_for_runs()
    run_id = _pick_run(run_arg)
    backend = _backend_of(run_id)
    names = [n.name for n in backend.topology.nodes]
    if args.node not in names:
        _fail(f"run {run_id} has no node {args.node!r} (nodes: {', '.join(names)})")
    argv = backend.login_argv(args.node, args.pytest_args or None)
    os.execvp(argv[0], argv)


def cmd_logs(args):
    """Journals, service logs, the CIB, crm_mon and crm_report of every node in one archive."""
    _ready_for_runs()
    from . import nodelogs
    from pathlib import Path
    run_id = _pick_run(args.run_id)
    backend = _backend_of(run_id)
    nodes = [n.name for n in backend.topology.nodes if backend.is_running(n.name)]
    if not nodes:
        _fail(f"run {run_id}: no node is running")
    dest = Path(args.output or f"ha-harness-logs-{run_id}-{time.strftime('%Y%m%d-%H%M%S')}.tar.gz")
    missing = nodelogs.archive(backend, nodes, dest)
    for line in missing:
        print(f"not collected: {line}", file=sys.stderr)
    print(f"{dest}: logs of {', '.join(nodes)} ({dest.stat().st_size // 1024} KiB)")


def _remove(run_id: str, force: bool) -> list[str]:
    """Remove a run under its lock; a run another command holds is refused unless forced."""
    lock = RunLock(run_id)
    try:
        lock.acquire()
    except RunBusy:
        if not force:
            raise
    try:
        return _platform_of(run_id).remove_run(run_id)
    finally:
        lock.release()


def cmd_down(args):
    _ready_for_runs()
    run_id = _pick_run(args.run_id)
    try:
        removed = _remove(run_id, args.force)
    except RunBusy as e:
        _fail(f"{e}; `down --force` removes it anyway")
    print(f"removed {len(removed)} objects of run {run_id}: {', '.join(removed)}")


def gc_plan(runs: dict, states: dict, kept: bool, force: bool) -> tuple[list, list]:
    """(run ids to remove, [(run id, why kept)]): crashed runs; kept ones with --kept; all with --force."""
    remove, spare = [], []
    for run_id in sorted(runs):
        state, why = states[run_id]
        if force or state == ownership.CRASHED or (state == ownership.KEPT and kept):
            remove.append(run_id)
        else:
            hint = "--kept or `down RUN` removes it" if state == ownership.KEPT else "--force removes it"
            spare.append((run_id, f"{state}: {why}; {hint}"))
    return remove, spare


def cmd_gc(args):
    _ready_for_runs()
    runs = _runs()
    remove, spare = gc_plan(runs, {r: _state(r, i) for r, i in runs.items()}, args.kept, args.force)
    removed = []
    for run_id in remove:
        if args.dry_run:
            print(f"would remove run {run_id} ({_state(run_id, runs[run_id])[0]})")
            continue
        try:
            removed += _remove(run_id, args.force)
        except RunBusy as e:       # a command took it since we looked
            spare.append((run_id, str(e)))
    if not args.dry_run:
        for platform in _platforms():
            removed += [f"build tree {p}" for p in platform.remove_stale_builds()]
            if args.images:
                removed += [f"image {t}" for t in platform.remove_images()]
    for line in removed:
        print(f"removed {line}")
    for run_id, why in spare:
        print(f"kept run {run_id} ({why})")
    if not removed and not remove:
        print("nothing to remove")


def _report(fn, *args):
    """Run a report function; bad input ends in one line naming the problem."""
    from .report.results import ResultsError
    try:
        return fn(*args)
    except ResultsError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"{e.filename or '?'}: {e.strerror or e}")


def cmd_report_html(args):
    from .report import html
    print(f"wrote {_report(html.write, args.results, args.out)}")


def cmd_report_compare(args):
    from .report import abcompare
    base, new = _report(abcompare.load_runs, args.base), _report(abcompare.load_runs, args.new)
    if len(base) > 1 or len(new) > 1:
        _report_compare_sides(args, base, new)
    else:
        _report_compare_two(args, base[0], new[0])


def _report_compare_sides(args, base: list[dict], new: list[dict]):
    """Several runs on a side: statistics per figure (abcompare); exit 1 on a regression."""
    from pathlib import Path
    from .report import abcompare
    if not 0.5 < args.confidence < 1:
        _fail(f"--confidence {args.confidence}: between 0.5 and 1 (e.g. 0.95)")
    cmp = abcompare.compare_sides(base, new, confidence=args.confidence, min_effect_s=args.min_effect)
    print("\n".join([*cmp.notes, abcompare.text_table(cmp), abcompare.summary_line(cmp)]))
    if args.json:
        print(f"wrote {_report(abcompare.write_json, cmp, args.json)}")
    if args.html:
        _report(Path(args.html).write_text, abcompare.html_page(cmp, args.base, args.new))
        print(f"wrote {args.html}")
    sys.exit(1 if cmp.regressions() else 0)


def _report_compare_two(args, base: dict, new: dict):
    from pathlib import Path
    from .report import compare
    rows = compare.compare(base, new, args.threshold_s, args.threshold_pct)
    for note in compare.notes(base, new):
        print(note)
    shown = rows if args.all else [r for r in rows if r.status != compare.SAME]
    print(compare.text_table(shown) if shown else "no figure changed")
    print(compare.summary(rows, args.threshold_s, args.threshold_pct))
    if args.html:
        page = compare.html_page(rows, args.base, args.new, args.threshold_s, args.threshold_pct,
                                 compare.notes(base, new))
        _report(Path(args.html).write_text, page)
        print(f"wrote {args.html}")
    if args.json:
        import json
        from dataclasses import asdict
        _report(Path(args.json).write_text, json.dumps([asdict(r) for r in rows], indent=2) + "\n")
        print(f"wrote {args.json}")
    sys.exit(1 if compare.regressions(rows) else 0)


def cmd_report_table(args):
    from .report import results, table
    print(table.markdown(_report(results.load, args.results)))


def cmd_report_trend(args):
    from .report import trend
    out, skipped = _report(trend.write, args.dir, args.out)
    for line in skipped:
        print(f"warning: {line}", file=sys.stderr)
    print(f"wrote {out}")


def cmd_report_upgrade(args):
    from .report import results
    out = args.out or args.results
    doc = _report(results.upgrade, args.results, out)
    print(f"wrote {_report(results.write, doc, out)} (schema {doc['schema_version']})")


def cmd_job(args):
    from . import job
    try:
        code = job.main(args.topologies, args.reports_dir, args.pytest_args)
    except job.JobError as e:
        _fail(str(e))
    sys.exit(code)


def cmd_ab(args):
    from . import ab, job
    topology = args.topology or args.topology_opt
    if args.rejudge:
        try:
            sys.exit(ab.rejudge(args.rejudge, args.confidence, args.min_effect))
        except ab.AbError as e:
            _fail(str(e))
    if not topology:
        _fail("ab needs a topology (ab TOPOLOGY or --topology TOPOLOGY)")
    try:
        code = ab.main(topology, args.agent, args.agents, args.scenarios, args.repeat, args.confidence,
                       args.min_effect, args.reports_dir, args.backend, args.keep_cluster, args.pytest_args)
    except (ab.AbError, job.JobError) as e:
        _fail(str(e))
    sys.exit(code)


def cmd_job_summary(args):
    from .report import jobsummary
    records, meta = _report(jobsummary.records_from_dirs, args.dirs)
    if not records:
        _fail(f"no run directory (results.json or junit.xml) in {' '.join(args.dirs)}")
    summary = jobsummary.build(records, meta)
    print(jobsummary.text(summary), end="")
    if args.out:
        for path in jobsummary.write(summary, args.out):
            print(f"wrote {path}")
    sys.exit(jobsummary.exit_code(summary))


def _split_pytest_args(argv: list[str]) -> tuple[list[str], list[str]]:
    # `job T... -- ARGS`: everything after `--` goes to pytest untouched (argparse would
    # take it as more topologies); `shell NODE -- CMD`: the command to run on the node
    if argv[:1] in (["job"], ["shell"], ["ab"]) and "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv=None):
    prog = "ha-harness" if os.path.basename(sys.argv[0]) == "ha-harness" else "python -m harness"
    p = argparse.ArgumentParser(prog=prog, description="HA test harness for Pacemaker clusters")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("validate", help="check a topology file")
    s.add_argument("topology")
    s.set_defaults(fn=cmd_validate)
    s = sub.add_parser("topologies", help="list the shipped topologies, or print one to start a file of your own")
    s.add_argument("name", nargs="?")
    s.add_argument("--resolved", action="store_true", help="a variant (`extends:`) with its bases merged in")
    s.set_defaults(fn=cmd_topologies)
    s = sub.add_parser("host", help="check or prepare this host (Docker engine, debootstrap)")
    s.add_argument("action", choices=["check", "prepare"])
    s.add_argument("--backend", default="docker", choices=BACKENDS)
    s.set_defaults(fn=cmd_host)
    s = sub.add_parser("images", help="build (or reuse) the node images of a topology")
    s.add_argument("topology", nargs="?", default="ha-2node")
    s.add_argument("--rebuild", action="store_true")
    s.add_argument("--backend", default="docker", choices=BACKENDS)
    s.set_defaults(fn=cmd_images)
    s = sub.add_parser("up", help="bring a cluster up and keep it")
    s.add_argument("topology", nargs="?", default="ha-2node")
    s.add_argument("--backend", default="docker", choices=BACKENDS)
    s.add_argument("--run-id")
    s.add_argument("--keep-failed", action="store_true", help="keep the nodes if bring-up fails (debugging)")
    s.add_argument("--wait", type=float, default=60.0,
                   help="seconds to wait while another command uses the run, then reuse it (default 60)")
    s.set_defaults(fn=cmd_up)
    s = sub.add_parser("status", help="a run's nodes, DC, quorum and placement; with several runs, "
                                      "every run with its state (live/kept/crashed), owner and age")
    s.add_argument("run_id", nargs="?")
    s.set_defaults(fn=cmd_status)
    s = sub.add_parser("down", help="remove a run's containers and network")
    s.add_argument("run_id", nargs="?")
    s.add_argument("--force", action="store_true", help="even while another command uses the run")
    s.set_defaults(fn=cmd_down)
    s = sub.add_parser("shell", help="a shell on a node of a run; a command after `--` runs there instead")
    s.add_argument("target", nargs="+", metavar="[RUN] NODE")
    s.add_argument("--run", dest="run_id", help="the run (default: the only one)")
    s.set_defaults(fn=cmd_shell)
    s = sub.add_parser("logs", help="journals, service logs, CIB, crm_mon and crm_report of a run's nodes "
                                    "in one .tar.gz")
    s.add_argument("run_id", nargs="?")
    s.add_argument("-o", "--output", help="archive path (default: ha-harness-logs-RUN-TIME.tar.gz here)")
    s.set_defaults(fn=cmd_logs)
    s = sub.add_parser("gc", help="remove crashed runs (owner gone, never meant to stay); "
                                  "kept and live runs stay unless asked")
    s.add_argument("--kept", action="store_true", help="also remove kept runs (left up by `up`/--keep-cluster)")
    s.add_argument("--force", action="store_true", help="remove every run, even live ones in use")
    s.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    s.add_argument("--images", action="store_true", help="also remove the cached node images")
    s.set_defaults(fn=cmd_gc)
    s = sub.add_parser("report", help="failover reports: rebuild the HTML, compare two runs, trend over runs")
    rsub = s.add_subparsers(dest="report_cmd", required=True)
    r = rsub.add_parser("html", help="(re)build report.html from a results.json and its histories")
    r.add_argument("results", help="results.json (schema 1)")
    r.add_argument("--out", help="output file (default: report.html next to RESULTS)")
    r.set_defaults(fn=cmd_report_html)
    r = rsub.add_parser("compare", help="what got worse or better; exit 1 on a regression beyond the thresholds",
                        description="BASE and NEW are each a results.json, a run directory or a directory of run "
                                    "directories. One run per side: figure against figure, with thresholds. "
                                    "Several runs on a side: per figure medians, spread, an exact rank test and a "
                                    "bootstrap interval (--confidence, --min-effect); a scenario passing on BASE "
                                    "and failing on NEW is a regression whatever the timings.")
    r.add_argument("base")
    r.add_argument("new")
    r.add_argument("--threshold-s", type=float, default=1.0,
                   help="one run per side: seconds a figure must grow by (default 1.0)")
    r.add_argument("--threshold-pct", type=float, default=20.0,
                   help="one run per side: percent it must grow by, too (default 20)")
    r.add_argument("--confidence", type=float, default=0.95,
                   help="several runs: confidence of the rank test (default 0.95)")
    r.add_argument("--min-effect", type=float, default=0.5,
                   help="several runs: seconds the shift must reach to count as slower (default 0.5)")
    r.add_argument("--json", help="also write every figure (and with several runs, every statistic) as JSON here")
    r.add_argument("--html", help="also write the comparison as HTML here")
    r.add_argument("--all", action="store_true", help="one run per side: also print unchanged figures")
    r.set_defaults(fn=cmd_report_compare)
    r = rsub.add_parser("table", help="print the downtime per scenario and client probe (markdown)")
    r.add_argument("results", help="results.json (schema 1)")
    r.set_defaults(fn=cmd_report_table)
    r = rsub.add_parser("trend", help="figures over time from a directory of results.json files")
    r.add_argument("dir")
    r.add_argument("--out", default="trend.html", help="output file (default: trend.html)")
    r.set_defaults(fn=cmd_report_trend)
    r = rsub.add_parser("upgrade", help="convert a results.json written before schema versions to schema 1")
    r.add_argument("results")
    r.add_argument("--out", help="output file (default: rewrite RESULTS in place)")
    r.set_defaults(fn=cmd_report_upgrade)
    s = sub.add_parser("job", help="run the scenarios on each topology in turn, then print one summary",
                       description="Runs `pytest harness/scenarios --topology T -v` for each topology in order, "
                                   "continues after a failing one, and prints one summary of all of them "
                                   "(also job-summary.json/.md in the job directory). Exit 0 only if every "
                                   "topology passed. Arguments after `--` go to every pytest session.")
    s.add_argument("topologies", nargs="+", metavar="TOPOLOGY[:ARGS]",
                   help="a topology name or file; `:ARGS` (split like a shell line) go to its session only, "
                        "before the ones after `--`, e.g. os-aa-3node:--probe-interval=1.0")
    s.add_argument("--reports-dir", default="reports",
                   help="the job writes DIR/job-<time>/ with one run directory per topology (default: reports)")
    s.set_defaults(fn=cmd_job)
    s = sub.add_parser("ab", help="stock agents (A) against patched ones (B): the same scenarios N times each, "
                                  "interleaved on one cluster, then one comparison with statistics",
                       description="Validate a resource-agent patch: ocf-tester on each patched agent first, then "
                                   "the selected scenarios REPEAT times per side in ABBA order on one cluster (the "
                                   "patch installed in place of the stock file on every node), then a comparison "
                                   "per scenario and figure: medians, spread, a rank test and a bootstrap interval, "
                                   "and a verdict. Exit 1 on a regression (a scenario passing on A and failing on B, "
                                   "or a slower figure). Arguments after `--` go to every pytest session.")
    s.add_argument("topology", nargs="?")
    s.add_argument("--topology", dest="topology_opt", metavar="TOPOLOGY", help="same as the positional argument")
    s.add_argument("--agent", action="append", default=[], metavar="ocf:PROVIDER:TYPE=PATH",
                   help="the patched agent (repeatable)")
    s.add_argument("--agents", action="append", default=[], metavar="PROVIDER=DIR",
                   help="the topology's ocf:PROVIDER agents from a checkout (DIR/PROVIDER/*) or a provider directory")
    s.add_argument("-k", "--scenarios", metavar="EXPR", help="pytest -k expression choosing the scenarios (default: all)")
    s.add_argument("--repeat", type=int, default=5, help="sessions per side (default 5: the fewest at which a "
                                                         "full separation is significant at 0.95 with margin)")
    s.add_argument("--confidence", type=float, default=0.95, help="confidence of the verdicts (default 0.95)")
    s.add_argument("--min-effect", type=float, default=0.5,
                   help="seconds a median shift must reach to count as slower/faster (default 0.5)")
    s.add_argument("--reports-dir", default="reports", help="writes DIR/ab-<time>-<topology>/ (default: reports)")
    s.add_argument("--backend", default="docker", choices=BACKENDS)
    s.add_argument("--keep-cluster", action="store_true", help="leave the A/B cluster up afterwards")
    s.add_argument("--rejudge", metavar="AB_DIR", help="only compare again the sessions of a finished A/B "
                                                       "(e.g. with another --confidence/--min-effect); runs nothing")
    s.set_defaults(fn=cmd_ab)
    s = sub.add_parser("job-summary", help="rebuild a job's summary from existing run directories (runs nothing)")
    s.add_argument("dirs", nargs="+", metavar="DIR",
                   help="a job directory, a run directory, or a directory of run directories")
    s.add_argument("--out", metavar="DIR", help="also write job-summary.json and job-summary.md into DIR")
    s.set_defaults(fn=cmd_job_summary)
    argv, pytest_args = _split_pytest_args(list(sys.argv[1:] if argv is None else argv))
    args = p.parse_args(argv)
    args.pytest_args = pytest_args
    try:
        args.fn(args)
    except RunBusy as e:
        _fail(str(e))
    except Exception as e:
        # an engine or backend conflict is one line, not a traceback (HA_HARNESS_DEBUG=1 shows it)
        if os.environ.get("HA_HARNESS_DEBUG") or not _platform_error(e):
            raise
        _fail(f"{type(e).__name__}: {e}")


def _platform_error(e: Exception) -> bool:
    from .backends import BackendError
    from .cluster import ClusterError
    return isinstance(e, (BackendError, ClusterError, OSError)) or type(e).__module__.startswith("docker")
