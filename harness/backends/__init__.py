"""Backends create and destroy nodes and act on them from outside.

A backend knows nothing about Pacemaker or OpenStack: the provisioner drives
every node through this interface alone, so Docker and Vagrant share it.
"""
from __future__ import annotations

import abc
import ipaddress
import shlex
from dataclasses import dataclass
from pathlib import Path


class BackendError(RuntimeError):
    pass


@dataclass
class ExecResult:
    rc: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.rc == 0


class CommandFailed(BackendError):
    def __init__(self, node: str, cmd: str, result: ExecResult):
        self.result = result
        detail = (result.err or result.out).strip().splitlines()[-3:]
        super().__init__(f"{node}: `{cmd}` exited {result.rc}: {' | '.join(detail)}")


class Backend(abc.ABC):
    """One cluster's nodes. `node` arguments are topology node names; a topology with a
    quorum device also has its arbiter, a host named topology.QNETD outside the cluster,
    which create() makes and every per-host method (exec, kill, start, ...) accepts."""

    name = "abstract"
    # the node's interface on the cluster network (corosync's ring, the VIP, network faults)
    cluster_nic = "eth0"

    def __init__(self, topology, run_id: str):
        import dataclasses
        topology = dataclasses.replace(topology, cluster_nic=self.cluster_nic)   # ${cluster.nic}
        self.topology = topology
        self.original_topology = topology    # before create() relocates it to a free subnet
        self.run_id = run_id

    # lifecycle
    @abc.abstractmethod
    def create(self, image: str) -> None: ...

    @abc.abstractmethod
    def destroy(self) -> list[str]:
        """Remove every object of this run; return what was removed."""

    @abc.abstractmethod
    def exists(self) -> bool:
        """True when this run's nodes already exist (for --keep-cluster reuse)."""

    # inside a node
    @abc.abstractmethod
    def _exec(self, node: str, argv: list[str]) -> ExecResult: ...

    @abc.abstractmethod
    def copy(self, node: str, content: bytes, dest: str, mode: int = 0o644) -> None: ...

    @abc.abstractmethod
    def fetch(self, node: str, path: str) -> bytes:
        """The content of a file in a node."""

    @abc.abstractmethod
    def login_argv(self, node: str, command: list[str] | None = None) -> list[str]:
        """The host command that opens a shell on a node (interactive when `command` is
        None), or runs `command` there with the terminal attached."""

    def exec(self, node: str, cmd: str | list[str], timeout: float = 60, check: bool = True) -> ExecResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        # `timeout` inside the node: an exec never hangs the harness on a stuck node.
        result = self._exec(node, ["timeout", "-k", "5", str(int(timeout)), *argv])
        if check and not result.ok:
            raise CommandFailed(node, cmd if isinstance(cmd, str) else shlex.join(cmd), result)
        return result

    # node-level actions used by faults
    @abc.abstractmethod
    def kill(self, node: str) -> None:
        """Power cut: the node stops at once, no shutdown."""

    @abc.abstractmethod
    def start(self, node: str) -> None:
        """Boot a stopped/killed node (its cluster stack stays down until started)."""

    @abc.abstractmethod
    def shutdown(self, node: str, timeout: float = 300) -> bool:
        """Graceful shutdown; False when the node was still up at `timeout` and was killed."""

    @abc.abstractmethod
    def pause(self, node: str) -> None: ...

    @abc.abstractmethod
    def unpause(self, node: str) -> None: ...

    @abc.abstractmethod
    def disconnect(self, node: str) -> None:
        """Unplug the node's cluster network interface."""

    @abc.abstractmethod
    def reconnect(self, node: str) -> None: ...

    @abc.abstractmethod
    def is_running(self, node: str) -> bool: ...

    @abc.abstractmethod
    def power_state(self, node: str) -> str:
        """running, paused (frozen), stopped or missing."""

    @abc.abstractmethod
    def is_plugged(self, node: str) -> bool:
        """The node's cluster network interface is connected."""

    @abc.abstractmethod
    def memory_bytes(self, node: str) -> int | None: ...

    def fence_device(self) -> tuple[str, dict]:
        """(stonith agent, its params) that fence this run's nodes and nothing else; sets up
        whatever the device needs on the host and in the nodes."""
        raise BackendError(f"the {self.name} backend cannot fence nodes")

    def fence_device_broken(self, broken: bool) -> None:
        """Make the fence device fail every request (a fault), or work again."""
        raise BackendError(f"the {self.name} backend has no fence device to break")

    def fence_events(self, since_wall: float, until_wall: float) -> list[tuple[float, str]]:
        """(epoch, what) of every power action the fence device carried out or refused."""
        return []

    def testinfra_spec(self, node: str) -> str:
        """How testinfra reaches the node (harness/hosts.py)."""
        raise BackendError(f"the {self.name} backend hands out no testinfra hosts")

    # nodes on emulated CPUs (VMs under TCG): evidence that takes minutes there is skipped
    slow_nodes = False
    boot_timeout = 120.0       # s from power-on until a node answers (a VM's boot is longer)
    # how much longer the cluster's own actions take than on containers (TCG VMs: reloads,
    # Python agents and starts take 10-20x): the harness's waits for them scale with it
    wait_factor = 1.0

    def clock_offset(self, node: str) -> float:
        """Seconds the node's clock is ahead of the host's (0: containers share the host's)."""
        return 0.0

    def describe(self) -> dict:
        """Where the cluster is and how to reach it (for `up` and reports)."""
        return {"backend": self.name, "run_id": self.run_id}


def host_routes() -> list[ipaddress.IPv4Network]:
    """Every network the host routes to (bridges of Docker, libvirt, ...): taken."""
    nets = []
    for line in Path("/proc/net/route").read_text().splitlines()[1:]:
        f = line.split()
        dest, mask = int(f[1], 16), int(f[7], 16)
        if dest:
            nets.append(ipaddress.ip_network((ipaddress.IPv4Address(dest.to_bytes(4, "little")),
                                              bin(mask).count("1")), strict=False))
    return nets


def free_subnets(wanted: str, pool, used=None):
    """The wanted subnet first, then the others of its size in `pool` that overlap nothing
    in `used` (default: the host's routes)."""
    wanted = ipaddress.ip_network(wanted)
    used = host_routes() if used is None else used
    pool = ipaddress.ip_network(pool)
    for net in [wanted, *pool.subnets(new_prefix=max(wanted.prefixlen, pool.prefixlen))]:
        if not any(net.overlaps(u) for u in used):
            yield str(net)


class HostNotReady(BackendError):
    """The host cannot run this backend yet; str() says what to do."""


class Platform(abc.ABC):
    """What a backend owns beyond one run: the host it needs, the node images it builds,
    and every run that exists on it (for status, down and gc)."""
    name = "abstract"
    node_object = "node"          # what run_objects() calls a node: "container", "domain"

    @abc.abstractmethod
    def host_problems(self) -> list[str]:
        """What keeps this host from running the backend, one line each."""

    @abc.abstractmethod
    def prepare_host(self, say=print) -> None:
        """Install and start what the backend needs (idempotent)."""

    def available(self) -> bool:
        """This backend's runs can be listed and removed here now (cheap: no host checks)."""
        return not self.host_problems()

    def check_host(self) -> None:
        found = self.host_problems()
        if found:
            raise HostNotReady("; ".join(found))

    @abc.abstractmethod
    def ensure_images(self, layers, log=print, rebuild: bool = False) -> list:
        """Build or reuse the node images up to the last layer (BuildResult each)."""

    @abc.abstractmethod
    def remove_images(self) -> list[str]: ...

    def remove_stale_builds(self) -> list[str]:
        """Build trees left by builds killed hard."""
        return []

    @abc.abstractmethod
    def runs(self) -> dict[str, dict]:
        """{run_id: {"pid", "pid_start", "topology", "source", "created"}} of every run here."""

    @abc.abstractmethod
    def remove_run(self, run_id: str) -> list[str]:
        """Remove every object of one run; what was removed, one line each."""

    @abc.abstractmethod
    def objects_owned_by(self, pid: int) -> list[str]:
        """Names of the objects a process created (leftover checks)."""

    @abc.abstractmethod
    def run_objects(self, run_id: str) -> list[str]:
        """What exists of one run, "KIND NAME" each (e.g. "container ha-harness-RUN-node1")."""

    def version(self) -> str | None:
        return None

    def backend(self, topology, run_id: str) -> Backend:
        return get_backend(self.name, topology, run_id)


BACKENDS = ("docker", "vagrant")


def get_platform(name: str) -> Platform:
    if name == "docker":
        from .docker import DockerPlatform
        return DockerPlatform()
    if name == "vagrant":
        from .vagrant import VagrantPlatform
        return VagrantPlatform()
    raise BackendError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")


def get_backend(name: str, topology, run_id: str) -> Backend:
    if name == "docker":
        from .docker import DockerBackend
        return DockerBackend(topology, run_id)
    if name == "vagrant":
        from .vagrantnodes import VagrantBackend
        return VagrantBackend(topology, run_id)
    raise BackendError(f"unknown backend {name!r} (available: {', '.join(BACKENDS)})")
