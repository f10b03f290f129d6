"""One cluster run: topology -> images -> backend -> provisioner -> Cluster, and
a teardown that happens whatever ends the run (exception, Ctrl-C, SIGTERM)."""
from __future__ import annotations

import atexit
import signal
import time
from dataclasses import dataclass, field

from .backends import get_backend, get_platform
from .cluster import Cluster
from .labels import new_run_id
from .ownership import RunLock, mark_kept
from .provision import Provisioner


@dataclass
class Timings:
    images: list = field(default_factory=list)     # BuildResult per image
    create_s: float = 0.0
    bring_up_s: float = 0.0                        # containers created -> cluster settled


def _sigterm_as_interrupt() -> None:
    # SIGTERM (e.g. CI cancelling) must unwind like Ctrl-C so finalizers run.
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:      # not the main thread
        pass


class ClusterRun:
    def __init__(self, topology, backend: str = "docker", run_id: str | None = None,
                 keep: bool = False, log=print, lock_wait: float = 60.0, agent_overrides=()):
        self.keep = keep
        self.log = log
        self.run_id = run_id or (f"keep-{topology.name}" if keep else new_run_id())
        self.backend = get_backend(backend, topology, self.run_id)
        self.platform = get_platform(backend)
        # one command at a time acts on a run (a second `up` of a kept topology waits, then reuses it)
        self.lock = RunLock(self.run_id)
        self.lock_wait = lock_wait
        self.provisioner = Provisioner(self.backend, log=log)
        self.provisioner.agent_overrides = list(agent_overrides)
        self.cluster: Cluster | None = None
        self.timings = Timings()
        self.reused = False

    @property
    def topology(self):
        return self.backend.topology

    def up(self) -> Cluster:
        _sigterm_as_interrupt()
        self.platform.check_host()
        self.lock.acquire(self.lock_wait, log=self.log)
        if self.keep and self.backend.exists():
            self.reused = True
            self.log(f"reusing kept cluster {self.run_id}")
            self.cluster = Cluster(self.backend)
            for node in self.topology.nodes:
                if not self.backend.is_running(node.name):
                    self.backend.start(node.name)
                    self.provisioner.start_stack(node.name)
            self.cluster.wait_settled(timeout=300)
            self.provisioner.apply_agent_overrides()
            if self.topology.openstack:
                self.provisioner.reattach_openstack(self.cluster)
            mark_kept(self.run_id)
            return self.cluster
        if not self.keep:
            atexit.register(self.down)  # last resort if the caller never reaches down()
        self.timings.images = self._ensure_images()
        start = time.monotonic()
        self.backend.create(self.timings.images[-1].tag)
        self.timings.create_s = time.monotonic() - start
        self.cluster = self.provisioner.bring_up()
        self.timings.bring_up_s = time.monotonic() - start
        self.log(f"cluster {self.topology.name} (run {self.run_id}) up in {self.timings.bring_up_s:.1f}s "
                 f"on {self.topology.subnet}")
        if self.keep:
            mark_kept(self.run_id)      # only now: an `up` killed half-way leaves a crashed run
        return self.cluster

    def reprovision(self) -> Cluster:
        """New nodes from the same image, provisioned from scratch (the last step of a reset).
        The Cluster object stays the same: scenarios and fixtures hold it."""
        self.log(f"re-provisioning {self.topology.name} (run {self.run_id})")
        removed = self.backend.destroy()
        self.log(f"removed {len(removed)} objects")
        self.backend.topology = self.backend.original_topology
        start = time.monotonic()
        self.backend.create((self.timings.images or self._ensure_images())[-1].tag)
        self.provisioner.bring_up(cluster=self.cluster)
        self.log(f"re-provisioned in {time.monotonic() - start:.1f}s")
        return self.cluster

    def _ensure_images(self) -> list:
        return self.platform.ensure_images(self.topology.layers, log=self.log)

    def down(self) -> list[str]:
        atexit.unregister(self.down)
        if not self.lock.held:
            return []       # up() never got the run: whatever exists is another command's
        if self.keep:
            self.lock.release()
            self.log(f"keeping cluster {self.run_id} (--keep-cluster); remove with `python -m harness down {self.run_id}`")
            return []
        # Never let a second Ctrl-C stop the teardown half-way.
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            previous = None
        try:
            return self.backend.destroy()
        finally:
            self.lock.release()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def __enter__(self) -> Cluster:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc) -> None:
        self.down()
