"""Probes: background samplers recording what clients (and the cluster) see.

Each probe runs in its own thread on a fixed schedule (start times k * interval,
so a slow sample does not shift the grid) and records every attempt in the
history: start time, duration, outcome, error class and detail.
"""
from __future__ import annotations

import http.client
import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor


class Probe:
    kind = "sample"

    def __init__(self, name: str, interval: float):
        if interval <= 0:
            raise ValueError(f"probe {name}: interval must be > 0, got {interval}")
        self.name = name
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attempt(self) -> tuple[bool, str | None, str]:
        """One sample: (ok, error class or None, detail)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "type": type(self).__name__, "interval_s": self.interval}

    # Client probes overlap their attempts (like concurrent clients): a request
    # hanging until its timeout must not stop the next one from starting on time,
    # or the outage would be measured at the timeout's resolution, not the interval's.
    concurrent = False
    timeout = 1.0

    def _sample(self, history) -> None:
        t = history.now()
        start = time.monotonic()
        try:
            ok, error, detail = self.attempt()
        except Exception as e:  # a probe never dies: an exception is a failed sample
            ok, error, detail = False, type(e).__name__, str(e)[:200]
        self.emit(history, t, time.monotonic() - start, ok, error, detail)

    def _loop(self, history) -> None:
        workers = math.ceil(self.timeout / self.interval) + 2 if self.concurrent else 1
        next_start = history.now()
        with ThreadPoolExecutor(workers, thread_name_prefix=f"probe-{self.name}") as pool:
            while not self._stop.is_set():
                if self.concurrent:
                    pool.submit(self._sample, history)
                else:
                    self._sample(history)
                next_start += self.interval
                if next_start < history.now():      # overran: start again now, skip lost slots
                    next_start = history.now()
                self._stop.wait(max(0.0, next_start - history.now()))

    def emit(self, history, t, duration, ok, error, detail) -> None:
        history.record("sample", t=t, probe=self.name, ok=ok, duration=round(duration, 4),
                       error=error, detail=detail)

    def start(self, history) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(history,), name=f"probe-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)


class HttpProbe(Probe):
    """GET a URL; any answer below 500 is up (an OpenStack API root answers 300 Multiple
    Choices, or 401): the service is there. The body (our probe target answers its node
    name; APIs a version document) is the detail, cut short."""
    concurrent = True

    def __init__(self, name: str, host: str, port: int, path: str = "/", interval: float = 0.25,
                 timeout: float = 1.0):
        super().__init__(name, interval)
        self.host, self.port, self.path, self.timeout = host, port, path, timeout

    def attempt(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read(200).decode(errors="replace").strip()
            detail = body if len(body) <= 40 and "\n" not in body else f"HTTP {resp.status}"
            if resp.status < 500:
                return True, None, detail
            return False, f"HTTP{resp.status}", detail
        finally:
            conn.close()

    def describe(self):
        return {**super().describe(), "url": f"http://{self.host}:{self.port}{self.path}",
                "timeout_s": self.timeout}


class TcpProbe(Probe):
    """TCP connect to a port (works before any API exists, and for HAProxy frontends)."""
    concurrent = True

    def __init__(self, name: str, host: str, port: int, interval: float = 0.25, timeout: float = 1.0):
        super().__init__(name, interval)
        self.host, self.port, self.timeout = host, port, timeout

    def attempt(self):
        with socket.create_connection((self.host, self.port), timeout=self.timeout):
            return True, None, ""


class VipSampler(Probe):
    """Which nodes carry a VIP, read from every node's addresses at once.

    Two holders at once is recorded as such: it is a finding, not noise.
    """
    kind = "vip"

    def __init__(self, cluster, vip: str = "public", interval: float = 0.5):
        super().__init__(f"vip:{vip}", interval)
        self.cluster, self.vip = cluster, vip
        self._pool = ThreadPoolExecutor(len(cluster.node_names))

    def attempt(self):
        ip = self.cluster.topology.vip(self.vip).ip
        nodes = self.cluster.node_names
        found = [n for n, h in zip(nodes, self._pool.map(lambda n: self.cluster.holds(n, ip), nodes)) if h]
        return True, None, ",".join(found)

    def emit(self, history, t, duration, ok, error, detail):
        history.record("vip", t=t, vip=self.vip, holders=detail.split(",") if detail else [],
                       duration=round(duration, 4))


class ClusterSampler(Probe):
    """Pacemaker's view (DC, quorum, online nodes, placement) from crm_mon XML."""
    kind = "cluster"

    def __init__(self, cluster, interval: float = 1.0):
        super().__init__("cluster", interval)
        self.cluster = cluster
        self._last = None
        self._node = None

    def _view(self):
        # Stay with one node that has quorum: a node that is just (re)joining
        # reports resources it does not know yet as stopped, which is noise.
        if self._node:
            try:
                s = self.cluster.state(node=self._node)
                if s.quorum:
                    return s
            except Exception:
                pass
        for node in self.cluster.running_nodes():
            try:
                s = self.cluster.state(node=node)
            except Exception:
                continue
            if s.quorum and s.dc:
                self._node = node
                return s
        raise RuntimeError("no node with quorum answers crm_mon")

    def attempt(self):
        s = self._view()
        self._last = {"dc": s.dc, "quorum": s.quorum, "online": s.online, "view": self._node,
                      "placement": {rid: s.where(rid) for rid in sorted(s.resources)},
                      "failed_actions": len(s.failures)}
        return True, None, ""

    def emit(self, history, t, duration, ok, error, detail):
        if ok and self._last is not None:
            history.record("cluster", t=t, **self._last)
        else:
            history.record("cluster", t=t, error=error, detail=detail)


def read_cpu_times(path: str = "/proc/stat") -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from the aggregate `cpu` line."""
    with open(path) as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)          # idle + iowait
    total = sum(fields[:8])                                            # guest time is counted in user
    return total - idle, total


class HostSampler(Probe):
    """The host's CPU: busy share since the last sample and the 1-minute load. On a small
    host the nodes, their services and the probes share the same cores; a client timeout
    while the host is saturated says so in the history."""
    kind = "host"

    def __init__(self, interval: float = 1.0, stat: str = "/proc/stat", loadavg: str = "/proc/loadavg"):
        super().__init__("host", interval)
        self.stat, self.loadavg = stat, loadavg
        self._prev = read_cpu_times(stat)
        self._last: dict = {}

    def attempt(self):
        busy, total = read_cpu_times(self.stat)
        d_busy, d_total = busy - self._prev[0], total - self._prev[1]
        self._prev = (busy, total)
        with open(self.loadavg) as f:
            load1 = float(f.read().split()[0])
        self._last = {"busy": round(d_busy / d_total, 3) if d_total > 0 else None, "load1": load1,
                      "cpus": os.cpu_count()}
        return True, None, ""

    def emit(self, history, t, duration, ok, error, detail):
        if ok:
            history.record("host", t=t, **self._last)


class ProbeSet:
    """Start probes together, stop them together (also on exceptions)."""

    def __init__(self, history, probes):
        self.history = history
        self.probes = list(probes)

    def __enter__(self):
        self.history.meta.setdefault("probes", []).extend(p.describe() for p in self.probes)
        for p in self.probes:
            p.start(self.history)
        return self

    def __exit__(self, *exc):
        for p in self.probes:
            p._stop.set()
        for p in self.probes:
            p.stop()

    def last_are(self, probe: str, ok: bool, count: int, since: float | None = None) -> bool:
        """The last `count` samples of `probe` (started after `since`) all have this outcome."""
        recent = [s for s in self.history.samples(probe) if since is None or s["t"] >= since][-count:]
        return len(recent) == count and all(s["ok"] == ok for s in recent)

    def wait_samples(self, probe: str, ok: bool, count: int, timeout: float = 30,
                     since: float | None = None) -> None:
        """Block until the last `count` samples of `probe` (started after `since`) have this outcome."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.last_are(probe, ok, count, since):
                return
            time.sleep(0.05)
        raise TimeoutError(f"probe {probe}: no {count} consecutive {'good' if ok else 'failed'} samples in {timeout}s")


def http_probes(topology, interval: float = 0.25, timeout: float = 1.0) -> list[HttpProbe]:
    """One HTTP probe per `probes.http` entry of the topology."""
    return [HttpProbe(f"http:{h.name}", topology.vip(h.vip).ip, h.port, h.path, interval, timeout)
            for h in topology.http_checks]
