"""Docker backend: one systemd-as-PID-1 container per node on a per-run bridge."""
from __future__ import annotations

import io
import ipaddress
import os
import shlex
import sys
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from ..labels import (NODE_LABEL, ROLE_LABEL, OWNER_PID_LABEL, OWNER_START_LABEL, PREFIX, RUN_LABEL,
                      SOURCE_LABEL, TOPOLOGY_LABEL)
from ..ownership import process_start, unmark_kept
from ..topology import QNETD
from . import Backend, BackendError, ExecResult, Platform, host_routes
from . import free_subnets as _free_subnets
from .fencegate import GateFencing

# --privileged fails on these hosts (CAP_SYS_RESOURCE is not grantable); this set runs systemd.
NODE_HOST_CONFIG = dict(
    cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
    tmpfs={"/run": "", "/run/lock": ""},
    binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
    # corosync's blackbox and every Pacemaker client's IPC rings live in /dev/shm; a
    # killed daemon leaks its share, and Docker's default 64 MB filled up after a
    # corosync SIGKILL scenario ("No space left on device", the CIB unreachable)
    shm_size="512m",
    # HAProxy clones bind the VIP's ports on every node, before the VIP is there
    # (/proc/sys is read-only in the container: only Docker can set it)
    sysctls={"net.ipv4.ip_nonlocal_bind": "1"},
)
CANDIDATE_POOL = ipaddress.ip_network("10.213.0.0/16")


def client() -> docker.DockerClient:
    return docker.from_env(timeout=300)


def used_subnets(cli) -> list[ipaddress.IPv4Network]:
    """Subnets of every Docker network and every host route: a new network must avoid them."""
    nets = []
    for n in cli.api.networks():
        for cfg in (n.get("IPAM") or {}).get("Config") or []:
            try:
                nets.append(ipaddress.ip_network(cfg["Subnet"]))
            except (KeyError, ValueError):
                pass
    return nets + host_routes()


def free_subnets(cli, wanted: str):
    """The topology's own subnet first, then other /N in 10.213.0.0/16 that nothing uses."""
    return _free_subnets(wanted, CANDIDATE_POOL, used_subnets(cli))


class DockerBackend(GateFencing, Backend):
    name = "docker"

    def __init__(self, topology, run_id: str):
        super().__init__(topology, run_id)
        self.cli = client()
        self.network_name = f"{PREFIX}-{run_id}"

    def container_name(self, node: str) -> str:
        return f"{PREFIX}-{self.run_id}-{node}"

    def _labels(self, **extra) -> dict:
        return {RUN_LABEL: self.run_id, TOPOLOGY_LABEL: self.topology.name,
                SOURCE_LABEL: os.path.abspath(self.topology.source),
                OWNER_PID_LABEL: str(os.getpid()), OWNER_START_LABEL: process_start(os.getpid()) or "", **extra}

    # ------------------------------------------------------------ lifecycle
    def create_network(self) -> str:
        """Create this run's bridge on a free subnet; return the subnet used.

        Two runs may pick the same free subnet at once: Docker refuses the
        second, which then tries the next one.
        """
        last = None
        for subnet in free_subnets(self.cli, self.topology.subnet):
            gateway = str(ipaddress.ip_network(subnet).network_address + 1)
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
            try:
                self.cli.networks.create(self.network_name, driver="bridge", ipam=ipam,
                                         internal=True, labels=self._labels(), check_duplicate=True)
                return subnet
            except APIError as e:
                last = e
                if "overlap" not in str(e).lower():
                    raise BackendError(f"cannot create network {self.network_name}: {e.explanation}") from e
        raise BackendError(f"no free subnet for network {self.network_name}: {last}")

    def create(self, image: str) -> None:
        # The topology's subnet may be taken (e.g. by a concurrent run): every
        # address of the plan moves with the subnet actually obtained.
        self.topology = self.topology.relocated(self.create_network())
        binds = dict(NODE_HOST_CONFIG["binds"])
        for vol in self.topology.shared_volumes:
            # One volume mounted in every node: the shared disk an active/passive
            # database sits on. Docker seeds an empty volume from the image's content.
            name = f"{PREFIX}-{self.run_id}-{vol.name}"
            self.cli.volumes.create(name, labels=self._labels())
            binds[name] = {"bind": vol.path, "mode": "rw"}
        for node in self.topology.nodes:
            self._create_container(image, node.name, node.ip, self._labels(**{NODE_LABEL: node.name}), binds)
        qdevice = self.topology.corosync.qdevice
        if qdevice:
            # the quorum device's arbiter: same image, on the run's network, not a cluster node
            self._create_container(image, QNETD, qdevice.ip, self._labels(**{ROLE_LABEL: QNETD}),
                                   dict(NODE_HOST_CONFIG["binds"]))
            self.start(QNETD)
        for node in self.topology.nodes:
            self.start(node.name)

    def _create_container(self, image: str, name: str, ip: str, labels: dict, binds: dict) -> None:
        endpoint = self.cli.api.create_endpoint_config(ipv4_address=ip)
        self.cli.api.create_container(
            image, name=self.container_name(name), hostname=name, labels=labels,
            host_config=self.cli.api.create_host_config(
                **{**NODE_HOST_CONFIG, "binds": binds},
                extra_hosts={n.name: n.ip for n in self.topology.nodes}),
            networking_config=self.cli.api.create_networking_config({self.network_name: endpoint}),
            stop_signal="SIGRTMIN+3")

    def exists(self) -> bool:
        try:
            net = self.cli.networks.get(self.network_name)
        except NotFound:
            return False
        self.topology = self.topology.relocated(net.attrs["IPAM"]["Config"][0]["Subnet"])
        return all(self._container(n.name, missing_ok=True) for n in self.topology.nodes)

    def destroy(self) -> list[str]:
        return remove_run(self.cli, self.run_id)

    # ------------------------------------------------------------ inside nodes
    def _container(self, node: str, missing_ok: bool = False):
        try:
            return self.cli.containers.get(self.container_name(node))
        except NotFound:
            if missing_ok:
                return None
            raise BackendError(f"node {node}: container {self.container_name(node)} does not exist")

    def _exec(self, node: str, argv: list[str]) -> ExecResult:
        try:
            rc, (out, err) = self._container(node).exec_run(argv, demux=True)
        except APIError as e:
            # e.g. the node is killed or frozen: report like a failed command
            return ExecResult(125, "", str(e.explanation or e))
        return ExecResult(rc, (out or b"").decode(errors="replace"), (err or b"").decode(errors="replace"))

    def copy(self, node: str, content: bytes, dest: str, mode: int = 0o644) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(dest))
            info.size, info.mode, info.mtime = len(content), mode, int(time.time())
            tar.addfile(info, io.BytesIO(content))
        self.exec(node, ["mkdir", "-p", os.path.dirname(dest)])
        if not self._container(node).put_archive(os.path.dirname(dest), buf.getvalue()):
            raise BackendError(f"{node}: copying {dest} failed")

    def fetch(self, node: str, path: str) -> bytes:
        try:
            stream, _ = self._container(node).get_archive(path)
        except (NotFound, APIError) as e:
            raise BackendError(f"{node}: cannot read {path}: {getattr(e, 'explanation', e)}") from None
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            return tar.extractfile(member).read()

    def login_argv(self, node: str, command: list[str] | None = None) -> list[str]:
        tty = ["-it"] if command is None or sys.stdin.isatty() else ["-i"]
        return ["docker", "exec", *tty, self.container_name(node), *(command or ["bash", "-l"])]

    def testinfra_spec(self, node: str) -> str:
        return f"docker://{self.container_name(node)}"

    # ------------------------------------------------------------ node-level actions
    def kill(self, node: str) -> None:
        self._container(node).kill()

    def start(self, node: str) -> None:
        self._container(node).start()

    def shutdown(self, node: str, timeout: float = 300) -> bool:
        c = self._container(node)
        c.stop(timeout=int(timeout))
        c.reload()
        return c.attrs["State"]["ExitCode"] != 137       # 128 + SIGKILL: docker's kill at the timeout

    PAUSE_ATTEMPTS = 5

    def pause(self, node: str) -> None:
        """docker pause, retried: on a loaded host runc's freeze of a busy cgroup can time out
        ("OCI runtime pause failed: unable to freeze", seen on os-aa-2node at load ~20), and
        runc leaves retrying to its caller; a freeze that completed late counts as done."""
        c = self._container(node)
        for attempt in range(1, self.PAUSE_ATTEMPTS + 1):
            try:
                c.pause()
                return
            except APIError as e:
                if "unable to freeze" not in str(e):
                    raise
                time.sleep(1.0)
                c.reload()
                if c.status == "paused":
                    return
                if attempt == self.PAUSE_ATTEMPTS:
                    raise BackendError(f"{node}: could not freeze it in {attempt} attempts: "
                                       f"{e.explanation or e}") from None

    def unpause(self, node: str) -> None:
        c = self._container(node)
        c.reload()
        if c.status == "paused":
            c.unpause()

    def disconnect(self, node: str) -> None:
        self.cli.networks.get(self.network_name).disconnect(self.container_name(node), force=True)

    def reconnect(self, node: str) -> None:
        net = self.cli.networks.get(self.network_name)
        net.reload()
        if self._container(node).id not in {c.id for c in net.containers}:
            net.connect(self.container_name(node), ipv4_address=self.topology.node(node).ip)

    def is_running(self, node: str) -> bool:
        return self.power_state(node) == "running"

    def power_state(self, node: str) -> str:
        c = self._container(node, missing_ok=True)
        if c is None:
            return "missing"
        c.reload()
        return {"running": "running", "paused": "paused"}.get(c.status, "stopped")

    def is_plugged(self, node: str) -> bool:
        c = self._container(node)
        return self.network_name in (c.attrs.get("NetworkSettings", {}).get("Networks") or {})

    def memory_bytes(self, node: str) -> int | None:
        """Container memory less inactive page cache, read from its cgroup (v1 or v2).

        `docker stats` reports 0 for these containers on cgroup v1 hosts.
        """
        cid = self._container(node).id
        for base in (Path("/sys/fs/cgroup/memory/docker") / cid, Path("/sys/fs/cgroup/docker") / cid,
                     Path("/sys/fs/cgroup/system.slice") / f"docker-{cid}.scope"):
            stat = base / "memory.stat"
            if not stat.exists():
                continue
            values = dict(line.split() for line in stat.read_text().splitlines())
            for usage_file, inactive in (("memory.usage_in_bytes", "total_inactive_file"),
                                         ("memory.current", "inactive_file")):
                if (base / usage_file).exists():
                    return int((base / usage_file).read_text()) - int(values.get(inactive, 0))
        return None

    # ------------------------------------------------------------ fencing (fencegate.GateFencing)
    def gate_address(self) -> str:
        """The bridge's gateway: the host side of the run's network."""
        return self.cli.networks.get(self.network_name).attrs["IPAM"]["Config"][0]["Gateway"]

    def gate_api_version(self) -> str:
        return self.cli.version()["ApiVersion"]

    def power_name(self, node: str) -> str:
        return self.container_name(node)

    def describe(self) -> dict:
        return {**super().describe(), "network": self.network_name, "subnet": self.topology.subnet,
                "nodes": {n.name: {"container": self.container_name(n.name), "ip": n.ip}
                          for n in self.topology.nodes},
                "shell": shlex.join(self.login_argv(self.topology.nodes[0].name))}


# ---------------------------------------------------------------- cleanup

def remove_run(cli, run_id: str | None) -> list[str]:
    """Remove the containers and networks of one run (or of every run if run_id is None)."""
    label = RUN_LABEL if run_id is None else f"{RUN_LABEL}={run_id}"
    from .fencegate import GATE_DIR, stop_gate
    if run_id is not None:
        unmark_kept(run_id)
    removed = []
    gates = [run_id] if run_id is not None else [p.name for p in GATE_DIR.glob("*") if p.is_dir()]
    for rid in gates:
        if stop_gate(rid):
            removed.append(f"fence gate {rid}")
    for c in list_containers(cli, label):
        if c.remove(cli):
            removed.append(f"container {c.name}")
    for n in cli.networks.list(filters={"label": label}):
        try:
            n.remove()
            removed.append(f"network {n.name}")
        except NotFound:
            pass
    for v in cli.volumes.list(filters={"label": label}):
        try:
            v.remove(force=True)
            removed.append(f"volume {v.name}")
        except NotFound:
            pass
    return removed


@dataclass(frozen=True)
class Listed:
    """A container as the engine's list call gives it: docker-py's containers.list() inspects
    each one afterwards and raises NotFound for one removed meanwhile (seen in the main job:
    a run being torn down while another session listed its objects)."""
    id: str
    name: str
    labels: dict
    created: str          # ISO 8601, UTC, like networks' and volumes' CreatedAt

    def remove(self, cli) -> bool:
        try:
            cli.api.remove_container(self.id, force=True, v=True)
            return True
        except NotFound:
            return False          # gone already: what we wanted


def list_containers(cli, label: str) -> list[Listed]:
    return [Listed(c["Id"], (c.get("Names") or ["/" + c["Id"][:12]])[0].lstrip("/"), c.get("Labels") or {},
                   datetime.fromtimestamp(c.get("Created", 0), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
            for c in cli.api.containers(all=True, filters={"label": label})]


def harness_runs(cli) -> dict[str, dict]:
    """Every run with objects on this engine: {run_id: {"pid", "pid_start", "topology",
    "source", "created"}} (created: the oldest object's creation time, ISO 8601)."""
    runs: dict[str, dict] = {}
    objects = [(c.labels, c.created) for c in list_containers(cli, RUN_LABEL)]
    objects += [(o.attrs.get("Labels") or {}, o.attrs.get("Created") or o.attrs.get("CreatedAt") or "")
                for o in [*cli.networks.list(filters={"label": RUN_LABEL}),
                          *cli.volumes.list(filters={"label": RUN_LABEL})]]
    for labels, created in objects:
        run = runs.setdefault(labels[RUN_LABEL], {"pid": labels.get(OWNER_PID_LABEL),
                                                  "pid_start": labels.get(OWNER_START_LABEL),
                                                  "topology": labels.get(TOPOLOGY_LABEL),
                                                  "source": labels.get(SOURCE_LABEL), "created": created})
        if created and (not run["created"] or created < run["created"]):
            run["created"] = created
    return runs


# ---------------------------------------------------------------- the platform

class DockerPlatform(Platform):
    """The Docker engine on this host: dockerd and debootstrap, images built offline, runs
    found by their labels."""
    name = "docker"
    node_object = "container"

    def host_problems(self) -> list[str]:
        from . import dockerhost
        return dockerhost.problems()

    def prepare_host(self, say=print) -> None:
        from . import dockerhost
        dockerhost.prepare(say)

    def available(self) -> bool:
        from . import dockerhost
        return dockerhost.engine_answers()

    def ensure_images(self, layers, log=print, rebuild: bool = False) -> list:
        from . import dockerimages
        return dockerimages.ensure_images(client(), layers=layers, log=log, rebuild=rebuild)

    def remove_images(self) -> list[str]:
        from . import dockerimages
        return dockerimages.remove_images(client())

    def remove_stale_builds(self) -> list[str]:
        from . import dockerimages
        return dockerimages.remove_stale_rootfs()

    def runs(self) -> dict[str, dict]:
        return harness_runs(client())

    def remove_run(self, run_id: str) -> list[str]:
        return remove_run(client(), run_id)

    def objects_owned_by(self, pid: int) -> list[str]:
        cli, label = client(), f"{OWNER_PID_LABEL}={pid}"
        return ([c.name for c in list_containers(cli, label)] +
                [n.name for n in cli.networks.list(filters={"label": label})])

    def run_objects(self, run_id: str) -> list[str]:
        cli, label = client(), f"{RUN_LABEL}={run_id}"
        return ([f"container {c.name}" for c in list_containers(cli, label)] +
                [f"network {n.name}" for n in cli.networks.list(filters={"label": label})] +
                [f"volume {v.name}" for v in cli.volumes.list(filters={"label": label})])

    def version(self) -> str | None:
        return client().version().get("Version")
