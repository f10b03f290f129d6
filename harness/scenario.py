"""What a scenario test holds: its history, probes, nemesis and the analysis
that turns the history into figures and a verdict."""
from __future__ import annotations

import time
from contextlib import contextmanager

from . import checkers, clusterlog
from .cluster import ClusterError
from .probes import ClusterSampler, HostSampler, ProbeSet, VipSampler, http_probes


class Scenario:
    def __init__(self, name: str, cluster, history, nemesis, target_s: float = checkers.DEFAULT_TARGET_S,
                 interval: float = 0.25):
        self.name = name
        self.cluster = cluster
        self.history = history
        self.nemesis = nemesis
        self.target_s = target_s
        self.interval = interval
        self.results: list[dict] = []      # one entry per analysed fault
        self._probes: ProbeSet | None = None
        # callables (interval, timeout) -> [Probe]: e.g. the OpenStack API probes
        self.probe_factories: list = []
        self._log_read_until = float("-inf")   # history time the cluster journal was read up to
        self.expected_failures: set[str] = set()   # resource ids whose failed actions the scenario causes
        self._phases: dict[str, float] = {}        # where the scenario's wall time went
        self.lost_nodes: set[str] = set()          # nodes a fault took (or took the membership of)
        # damage a fixture found outside the cluster's own state (e.g. a Masakari notification
        # that never ends): the post-scenario audit counts it, so the cluster is reset
        self.leftovers: list[str] = []
        nemesis.before_node_loss.append(self.expect_loss_of)

    def expect_loss_of(self, node: str) -> None:
        """A node that goes away takes its databases, queues and caches with it: the monitors
        of OpenStack services using them on other nodes may fail meanwhile, as after a daemon
        fault (seen in CI on os-aa-2node: the VIP holder's clean shutdown moved MariaDB, and
        neutron's API on the survivor missed its 5 s monitor check, 21 s of neutron downtime)."""
        self.lost_nodes.add(node)
        try:
            state = self.cluster.state()
        except ClusterError:
            return          # no view of the cluster: explain nothing more
        rsc = self.cluster.topology.resources
        for rid in state.resources:
            if node in state.where(rid):
                self.expected_failures |= rsc.runtime_clients(rid)

    # ------------------------------------------------------------ time accounting
    @contextmanager
    def phase(self, name: str):
        start = time.monotonic()
        try:
            yield
        finally:
            self._phases[name] = self._phases.get(name, 0.0) + time.monotonic() - start

    def phase_times(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in self._phases.items()}

    # ------------------------------------------------------------ probes
    def start_probes(self, interval: float | None = None, timeout: float = 1.0) -> ProbeSet:
        """HTTP probes of the topology, the VIP sampler(s) and the cluster sampler."""
        interval = interval or self.interval
        topo = self.cluster.topology
        probes = [*self._clients(interval, timeout),
                  *(VipSampler(self.cluster, v.name, interval=0.5) for v in topo.vips),
                  ClusterSampler(self.cluster, interval=1.0), HostSampler(interval=1.0)]
        self._probes = ProbeSet(self.history, probes).__enter__()
        self.history.meta["probe_interval_s"] = interval
        return self._probes

    def _clients(self, interval: float, timeout: float) -> list:
        return [*http_probes(self.cluster.topology, interval, timeout),
                *(p for factory in self.probe_factories for p in factory(interval, timeout))]

    def clients_ready(self, timeout: float, steady: int = 3) -> list[str]:
        """After the heal and settle: until every client probe answers `steady` times in a row;
        returns those that did not within `timeout`. A settled cluster is not yet a control
        plane that answers (seen on os-ap-2node: after a frozen active node was thawed the
        cluster settled and passed its audit, and the next scenario's baseline saw os:cinder
        fail for 32 s). Its samples go to a scratch history: the scenario's figures are final."""
        from .history import History
        deadline = time.monotonic() + timeout
        clients = self._clients(self.interval, 1.0)
        missing = []
        with ProbeSet(History(f"{self.name}-clients-ready", {}), clients) as probes:
            for probe in (p.name for p in clients):
                try:
                    probes.wait_samples(probe, ok=True, count=steady, timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    missing.append(probe)
        self.history.record("clients-ready", ok=not missing, missing=missing)
        return missing

    def stop_probes(self) -> None:
        if self._probes:
            self._probes.__exit__(None, None, None)
            self._probes = None

    def client_probes(self) -> list[str]:
        return [p.name for p in (self._probes.probes if self._probes else []) if p.kind == "sample"]

    # How long a baseline may wait for steady answers. A control plane just brought up and put
    # under the writers' load on 2 cores answered password logins only now and then for ~50 s
    # (os-aa-2node, 2026-12-01: a 30 s allowance failed the first scenario before its fault)
    BASELINE_PATIENCE_S = 90.0

    def baseline(self, seconds: float = 2.0) -> None:
        """Let probes record steady success before a fault; fail loudly if they cannot."""
        with self.phase("baseline"):
            for probe in self.client_probes():
                self._probes.wait_samples(probe, ok=True, count=max(3, int(seconds / self.interval)),
                                          timeout=seconds + self.BASELINE_PATIENCE_S)

    def wait_recovered(self, since: float, steady: int = 8, timeout: float | None = None) -> bool:
        """Until every client probe answered `steady` times in a row, all started after
        `since` (history time), or until the recovery target has passed."""
        deadline = time.monotonic() + (timeout or self.target_s)
        probes = self.client_probes()
        with self.phase("recovery_wait"):
            while True:
                for probe in probes:
                    try:
                        self._probes.wait_samples(probe, ok=True, count=steady, since=since,
                                                  timeout=max(0.0, deadline - time.monotonic()))
                    except TimeoutError:
                        return False
                # all steady at once: one that answered earlier may have failed again while a
                # later one was awaited (seen on os-ap-2node: keystone logins timed out again
                # during the serial restarts after neutron's, and the analysis found them failing)
                if not all(self._probes.last_are(p, True, steady, since) for p in probes):
                    continue
                # and still so once every attempt in flight has ended: a sample is recorded when
                # it ends, under the time it started, so attempts hanging until their timeout
                # land behind good ones already counted (ha-3node isolation: the isolated node
                # answered until it was fenced, the takeover's timeouts came in 1 s later, after
                # the wait had returned, and the analysis found the probe "never recovered")
                time.sleep(min(self._longest_timeout(), max(0.0, deadline - time.monotonic())))
                if all(self._probes.last_are(p, True, steady, since) for p in probes):
                    return True

    def _longest_timeout(self) -> float:
        return max((getattr(p, "timeout", 1.0) for p in self._probes.probes if p.kind == "sample"), default=1.0)

    # ------------------------------------------------------------ analysis
    def analyse(self, fault, node: str | None = None, target_s=None, end: float | None = None) -> dict:
        """Figures for one fault, all computed from the history; stored for the reports."""
        with self.phase("analysis"):
            return self._analyse(fault, node, target_s, end)

    def _analyse(self, fault, node, target_s, end) -> dict:
        since = fault.started_at
        self._read_cluster_log(since)
        downtimes = [checkers.downtime(self.history.samples(p), self.interval, start=since, end=end)
                     for p in self.client_probes()]
        result = {
            "fault": fault.name, "fault_id": fault.id, "target": fault.target, "fault_start": since,
            "fault_end": fault.healed_at, "probe_interval_s": self.interval,
            "downtime": {d.probe: d.to_dict() for d in downtimes},
            "vip": {v.name: vars(checkers.vip_move(self.history.events("vip"), v.name, since))
                    for v in self.cluster.topology.vips},
            "stages": checkers.recovery_stages(self.history, since, node),
        }
        v = checkers.verdict(downtimes, target_s or self.target_s)
        result["verdict"] = vars(v)
        # what the analysis saw, so a report can recompute it from the saved history
        result["analysed_at"] = self.history.now()
        result["analysis_end"] = end
        result["node"] = node
        result["findings"] = [f"VIP {name} was held by {mv['max_holders']} nodes at once"
                              for name, mv in result["vip"].items() if mv["max_holders"] > 1]
        failed = [x for p in self.client_probes() for x in self.history.samples(p)
                  if not x["ok"] and x["t"] >= since and (end is None or x["t"] <= end)]
        result["host"] = checkers.host_load(self.history.events("host"), failed, since, end)
        recovered = [d.recovered_at for d in downtimes if d.recovered_at is not None]
        result["full_recovery_s"] = round(max(recovered) - since, 3) if recovered else None
        self.results.append(result)
        return result

    def _read_cluster_log(self, since: float) -> None:
        """The cluster's own record of this fault (journal milestones) into the history,
        once per stretch of time (a schedule analyses several faults of one history)."""
        start = max(since - 1.0, self._log_read_until)
        until = self.history.now()
        try:
            clusterlog.collect(self.cluster, self.history, start, until)
        except Exception as e:      # the journal is extra evidence: its absence must not hide the figures
            self.history.record("note", text=f"cluster journal not read: {e}")
        self._log_read_until = until

    def summary_lines(self) -> list[str]:
        lines = []
        for r in self.results:
            lines.append(f"{self.name}: {r['fault']} on {r['target']}: "
                         f"{'PASS' if r['verdict']['passed'] else 'FAIL'} (target {r['verdict']['target_s']:.0f}s, "
                         f"probe interval {r['probe_interval_s']}s)")
            for probe, d in r["downtime"].items():
                dt = "never recovered" if not d["recovered"] else f"{d['downtime_s']:.2f}s"
                lines.append(f"    {probe}: downtime {dt}, unavailable {d['unavailable_s']:.2f}s, "
                             f"{d['failures']}/{d['samples']} failed, served by {' -> '.join(d['served_by'])}")
            for vip, mv in r["vip"].items():
                if mv["move_s"] is not None:
                    lines.append(f"    VIP {vip}: {mv['before']} -> {mv['after']} after {mv['move_s']:.2f}s "
                                 f"(max holders at once: {mv['max_holders']})")
            if h := r.get("host"):
                lines.append(f"    host CPU ({h['cpus']} cores): busy mean {h['busy_mean']:.0%}, max {h['busy_max']:.0%}, "
                             f"saturated {h['saturated_s']} s; failed client samples while saturated: "
                             f"{h['failed_while_saturated']}/{h['failed_samples']}")
            for reason in [*r["verdict"]["reasons"], *r["findings"]]:
                lines.append(f"    FINDING: {reason}")
        return lines


def known_weakness_without_fencing(request, cluster, what: str) -> None:
    """Mark a scenario as an expected failure when the cluster runs without fencing and
    the scenario asserts what only fencing guarantees: the finding is still reported
    (XFAIL with `what`), and a run where it did not happen shows as XPASS."""
    if cluster.topology.fencing is None and cluster.topology.properties.get("stonith-enabled") == "false":
        import pytest
        request.applymarker(pytest.mark.xfail(reason=f"no fencing: {what}", strict=False))
