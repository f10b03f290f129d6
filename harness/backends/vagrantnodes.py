"""Vagrant/libvirt backend: one VM per node, brought up by Vagrant from a box built
offline, driven from outside with virsh and from inside over SSH.

Each run has a directory (RUNS_DIR/<run>) with its Vagrantfile, Vagrant's state, the
ssh-config and who owns it (run.json). Commands go over one persistent SSH connection per
VM (an OpenSSH control master; each exec is a session on it, not a new login), as root
with Vagrant's key (the box authorizes it for root too: no sudo per command). The VMs'
clocks are their own: they are set from the host's at bring-up, after every boot and
resume, and their remaining offset is measured and reported (`clock`).
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

from ..labels import PREFIX
from ..ownership import process_start
from ..topology import QNETD
from . import Backend, BackendError, ExecResult, free_subnets
from .vagrant import BOOT_TIMEOUT, virsh   # TCG guests boot slowly, several at once slower still
from .fencegate import GateFencing

RUNS_DIR = Path("/var/lib/ha-harness/vagrant")
QEMU_USER = "libvirt-qemu"        # Debian's libvirt runs qemu as this user (qemu.conf default)
# cache=mmap: no page cache between the nodes (one disk, two kernels) except for mmap
NINEP_OPTIONS = "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"
MGMT_POOL = ipaddress.ip_network("192.168.120.0/21")    # management /24s for Vagrant's SSH
CLUSTER_POOL = ipaddress.ip_network("10.214.0.0/16")


def vagrant_env() -> dict:
    # no checkpoint: Vagrant would otherwise ask HashiCorp's servers for a newer version
    return dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_DEFAULT_PROVIDER="libvirt",
                VAGRANT_NO_COLOR="1")


def run_dir(run_id: str) -> Path:
    return RUNS_DIR / run_id


class VagrantBackend(GateFencing, Backend):
    name = "vagrant"
    cluster_nic = "eth1"          # eth0 is Vagrant's management network (SSH only)
    boot_timeout = BOOT_TIMEOUT

    def __init__(self, topology, run_id: str):
        from .vagrant import accelerator
        super().__init__(topology, run_id)
        self.dir = run_dir(run_id)
        self.slow_nodes = accelerator()[0] == "tcg"
        # measured on ha-2node, 2 TCG VMs: formation + CIB + settle 66-110 s (containers ~25 s),
        # a reset's settle after both VMs rebooted over 90 s
        self.wait_factor = 3.0 if self.slow_nodes else 1.0
        self._frozen: set[str] = set()
        self._down: set[str] = set()
        self._unsynced: set[str] = set()        # booted behind the harness's back (fencing)
        self.clock: dict[str, dict] = {}       # host -> {"offset_s", "error_s", "at"}
        # probes and scenarios exec at once: one master per VM, opened once
        self._master_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    # ------------------------------------------------------------ names
    def domain(self, host: str) -> str:
        return f"{PREFIX}-{self.run_id}-{host}"

    def hosts(self) -> list[str]:
        return [n.name for n in self.topology.nodes] + ([QNETD] if self.topology.corosync.qdevice else [])

    def _ip(self, host: str) -> str:
        return self.topology.corosync.qdevice.ip if host == QNETD else self.topology.node(host).ip

    def _mac(self, host: str) -> str:
        from .vagrant import cluster_mac
        return cluster_mac(self._ip(host))

    @property
    def ssh_config(self) -> Path:
        return self.dir / "ssh-config"

    def _vagrant(self):
        import vagrant as pyvagrant
        log = str(self.dir / "vagrant.log")
        return pyvagrant.Vagrant(root=str(self.dir), env=vagrant_env(),
                                 out_cm=pyvagrant.make_file_cm(log), err_cm=pyvagrant.make_file_cm(log))

    # ------------------------------------------------------------ lifecycle
    def create(self, image: str) -> None:
        from .vagrant import accelerator, render_vagrantfile
        self.topology = self.topology.relocated(next(free_subnets(self.topology.subnet, CLUSTER_POOL)))
        mgmt = next(free_subnets(str(next(MGMT_POOL.subnets(new_prefix=24))), MGMT_POOL))
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "run.json").write_text(json.dumps({
            "run_id": self.run_id, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
            "topology": self.topology.name, "source": os.path.abspath(self.topology.source),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "subnet": self.topology.subnet, "mgmt_subnet": mgmt, "box": image}))
        driver = "kvm" if accelerator()[0] == "kvm" else "qemu"
        shares = self._share_dirs()
        (self.dir / "Vagrantfile").write_text(
            render_vagrantfile(self.topology, self.run_id, image, driver=driver, mgmt_subnet=mgmt, shares=shares))
        self._up()
        self._write_ssh_config()
        hosts = "".join(f"{self._ip(h)} {h}\n" for h in self.hosts())
        for host in self.hosts():
            self.exec(host, f"printf %s {shlex.quote(hosts)} >> /etc/hosts")
            self.sync_clock(host)
        self._mount_shared_volumes(shares)

    # ------------------------------------------------------------ shared volumes (9p)
    def _share_dirs(self) -> dict[str, str]:
        """One host directory per shared volume, exported to every node over 9p in libvirt's
        "mapped" mode: qemu (user libvirt-qemu) owns the files on the host, and the owners and
        modes the nodes set are kept in extended attributes."""
        shares = {}
        for vol in self.topology.shared_volumes:
            path = self.dir / "volumes" / vol.name
            path.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(KeyError, LookupError):
                shutil.chown(path, QEMU_USER, QEMU_USER)
            path.chmod(0o700)
            shares[str(path)] = vol.path
        return shares

    def _mount_tags(self, host: str) -> dict[str, str]:
        """{host directory: 9p mount tag} of the exports in the host's domain."""
        xml = ElementTree.fromstring(virsh("dumpxml", self.domain(host)).stdout)
        return {fs.find("source").get("dir"): fs.find("target").get("dir") for fs in xml.iter("filesystem")}

    def _mount_shared_volumes(self, shares: dict[str, str]) -> None:
        """Seed each shared volume from the first node's own copy of its path (as Docker seeds
        an empty volume from the image), then mount it on every node, from fstab so that a
        node booted by the fence device mounts it again before Pacemaker starts."""
        nodes = [n.name for n in self.topology.nodes]
        tags = {node: self._mount_tags(node) for node in nodes} if shares else {}
        for source, path in shares.items():
            if any(source not in tags[node] for node in nodes):
                raise BackendError(f"no 9p export of {source} in every node's domain")
            tag = tags[nodes[0]][source]
            seed = f"/mnt/ha-harness-seed-{tag}"
            self.exec(nodes[0], f"mkdir -p {seed} && mount -t 9p -o {NINEP_OPTIONS} {tag} {seed} && "
                                f"cp -a {shlex.quote(path)}/. {seed}/ && chown --reference={shlex.quote(path)} {seed} && "
                                f"chmod --reference={shlex.quote(path)} {seed} && umount {seed} && rmdir {seed}",
                      timeout=900)
            for node in nodes:
                line = f"{tags[node][source]} {path} 9p {NINEP_OPTIONS},nofail,x-systemd.before=pacemaker.service 0 0"
                self.exec(node, f"echo {shlex.quote(line)} >> /etc/fstab && mkdir -p {shlex.quote(path)} && "
                                f"mount {shlex.quote(path)}")

    def _up(self, stop_s: float = 30) -> None:
        """`vagrant up` in a session of its own, stopped by the harness when interrupted: a
        Ctrl-C (or SIGTERM) must not leave it creating domains after the run was removed.
        (python-vagrant runs `up` where the harness cannot stop it; it reads ssh-config.)"""
        with open(self.dir / "vagrant.log", "ab") as log:
            proc = subprocess.Popen(["vagrant", "up", "--provider", "libvirt"], cwd=self.dir, env=vagrant_env(),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                rc = proc.wait()
            except BaseException:
                os.killpg(proc.pid, signal.SIGINT)          # Vagrant's own graceful stop
                try:
                    proc.wait(timeout=stop_s)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                raise
        if rc != 0:
            raise BackendError(f"vagrant up failed (exit {rc}): {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = (self.dir / "vagrant.log").read_text().strip().splitlines()
        except OSError:
            return "no vagrant.log"
        return " | ".join(lines[-4:]) + f" (see {self.dir / 'vagrant.log'})"

    def _write_ssh_config(self) -> None:
        self.ssh_config.write_text(self._vagrant().ssh_config())

    def exists(self) -> bool:
        try:
            meta = json.loads((self.dir / "run.json").read_text())
        except (OSError, ValueError):
            return False
        self.topology = self.topology.relocated(meta["subnet"])
        return self.ssh_config.exists() and all(self.power_state(h) != "missing" for h in self.hosts())

    def destroy(self) -> list[str]:
        from .vagrantruns import remove_run
        return remove_run(self.run_id)

    # ------------------------------------------------------------ inside nodes (SSH)
    def _control_path(self, host: str) -> str:
        return str(self.dir / f"ssh-{host}.sock")

    def _ssh(self, host: str, remote: str, *, tty: bool = False) -> list[str]:
        return ["ssh", "-F", str(self.ssh_config), "-l", "root", "-o", f"ControlPath={self._control_path(host)}",
                "-o", "ControlMaster=no", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                *(["-t"] if tty else []), host, "--", remote]

    def _master(self, host: str) -> bool:
        """The host's persistent connection, opened when missing (first use, after a boot);
        False when the VM is not running (fenced, crashed): no connection is tried, as
        `docker exec` fails at once on a stopped container."""
        with self._master_locks[host]:
            if os.path.exists(self._control_path(host)):
                return True
            if self.power_state(host) not in ("running", "missing"):
                return False
            self._open_master(host)
            return True

    def _open_master(self, host: str) -> None:
        # a VM that does not answer (killed, frozen, booting) gets no master: the exec then
        # fails on its own connection attempt, as a command on a dead node does
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["ssh", "-F", str(self.ssh_config), "-l", "root", "-o", f"ControlPath={self._control_path(host)}",
                            "-o", "ControlMaster=yes", "-o", "ControlPersist=600", "-o", "BatchMode=yes",
                            "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                            "-fN", host], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30, check=False)

    def _close(self, host: str) -> None:
        if os.path.exists(self._control_path(host)):
            subprocess.run(["ssh", "-o", f"ControlPath={self._control_path(host)}", "-O", "exit", host],
                           capture_output=True, timeout=10, check=False)

    def _run(self, host: str, argv: list[str], stdin: bytes | None = None, timeout: float = 90) -> ExecResult:
        gone = self._unavailable(host)
        if gone:
            # what `docker exec` answers for a paused or stopped container, without a hang
            return ExecResult(125, "", f"{host} is {gone}")
        if not self._master(host):
            return ExecResult(125, "", f"{host} is {self.power_state(host)}: no SSH")
        try:
            done = subprocess.run(self._ssh(host, shlex.join(argv)), input=stdin,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._close(host)
            return ExecResult(124, "", f"{host}: no answer over SSH within {timeout:.0f}s")
        if done.returncode == 255:       # SSH itself failed (e.g. fenced): drop a stale master
            self._close(host)
        elif host in self._unsynced:
            self._unsynced.discard(host)
            self.sync_clock(host)
        return ExecResult(done.returncode, done.stdout.decode(errors="replace"),
                          done.stderr.decode(errors="replace"))

    def _unavailable(self, host: str) -> str | None:
        """'frozen'/'stopped' for a VM the harness froze or stopped, until it runs again: the
        fence device may have booted it meanwhile (its clock is then set at the first command
        that gets through)."""
        if host not in self._frozen and host not in self._down:
            return None
        state = self.power_state(host)
        if state != "running":
            return "frozen" if state == "paused" else state
        self._frozen.discard(host)
        self._down.discard(host)
        self._unsynced.add(host)
        self._close(host)                # a master from before the power cycle is dead
        return None

    def _exec(self, host: str, argv: list[str]) -> ExecResult:
        # Backend.exec wraps argv in `timeout -k 5 N`: the SSH session gets N plus a margin
        limit = float(argv[3]) + 30 if argv[:1] == ["timeout"] and len(argv) > 3 else 120
        return self._run(host, argv, timeout=limit)

    def copy(self, node: str, content: bytes, dest: str, mode: int = 0o644) -> None:
        tmp = f"{dest}.ha-harness-tmp"
        script = (f"mkdir -p {shlex.quote(os.path.dirname(dest))} && cat > {shlex.quote(tmp)} && "
                  f"chmod {mode:o} {shlex.quote(tmp)} && mv {shlex.quote(tmp)} {shlex.quote(dest)}")
        r = self._run(node, ["sh", "-c", script], stdin=content)
        if not r.ok:
            raise BackendError(f"{node}: copying {dest} failed: {r.err.strip()[:200]}")

    def fetch(self, node: str, path: str) -> bytes:
        self._master(node)
        done = subprocess.run(self._ssh(node, shlex.join(["cat", path])), capture_output=True,
                              timeout=120)
        if done.returncode != 0:
            raise BackendError(f"{node}: cannot read {path}: {done.stderr.decode(errors='replace').strip()[:200]}")
        return done.stdout

    def login_argv(self, node: str, command: list[str] | None = None) -> list[str]:
        return self._ssh(node, shlex.join(command) if command else "bash -l", tty=True)

    def testinfra_spec(self, node: str) -> str:
        # the run's own persistent connection (ControlMaster=auto reuses it)
        return f"ssh://root@{node}?ssh_config={self.ssh_config}&controlpath={self._control_path(node)}"

    # ------------------------------------------------------------ clocks
    def measure_clock(self, host: str) -> dict:
        """The VM clock's offset from the host's: the midpoint of one exec, error half its length."""
        t0 = time.time()
        r = self._run(host, ["date", "+%s.%N"], timeout=30)
        t1 = time.time()
        if not r.ok:
            return {}
        sample = {"offset_s": round(float(r.out.strip()) - (t0 + t1) / 2, 3), "error_s": round((t1 - t0) / 2, 3),
                  "at": round(t1, 3)}
        self.clock[host] = sample
        return sample

    def sync_clock(self, host: str) -> dict:
        """Set the VM's clock from the host's (it stood still while frozen, and a boot reads
        an RTC with 1 s resolution), then measure what is left."""
        first = self.measure_clock(host)
        if first and abs(first["offset_s"]) > first["error_s"]:
            self._run(host, ["date", "-s", f"@{time.time() + first['error_s']:.3f}"], timeout=30)
        return self.measure_clock(host)

    def clock_offset(self, node: str) -> float:
        return self.clock.get(node, {}).get("offset_s", 0.0)

    # ------------------------------------------------------------ node-level actions
    def kill(self, node: str) -> None:
        virsh("destroy", self.domain(node))
        self._down.add(node)
        self._close(node)

    def start(self, node: str) -> None:
        if self.power_state(node) != "running":
            virsh("start", self.domain(node))
        self._down.discard(node)
        self._close(node)
        self.wait_ssh(node)
        self.sync_clock(node)

    def wait_ssh(self, host: str, timeout: float = BOOT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            r = self._run(host, ["true"], timeout=30)
            if r.ok:
                return
            if time.monotonic() > deadline:
                raise BackendError(f"{host}: no SSH within {timeout:.0f}s of its boot: {r.err.strip()[:160]}")
            self._close(host)
            time.sleep(2)

    def shutdown(self, node: str, timeout: float = 300) -> bool:
        virsh("shutdown", self.domain(node))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.power_state(node) == "stopped":
                break
            time.sleep(1)
        clean = self.power_state(node) == "stopped"
        if not clean:
            virsh("destroy", self.domain(node), check=False)
        self._down.add(node)
        self._close(node)
        return clean

    def pause(self, node: str) -> None:
        virsh("suspend", self.domain(node))
        self._frozen.add(node)

    def unpause(self, node: str) -> None:
        if self.power_state(node) == "paused":
            virsh("resume", self.domain(node))
        was_frozen = node in self._frozen
        self._frozen.discard(node)
        if was_frozen:
            self.sync_clock(node)        # the guest clock stood still while it was suspended

    def disconnect(self, node: str) -> None:
        virsh("domif-setlink", self.domain(node), self._mac(node), "down")

    def reconnect(self, node: str) -> None:
        virsh("domif-setlink", self.domain(node), self._mac(node), "up")

    def is_running(self, node: str) -> bool:
        return self.power_state(node) == "running"

    def power_state(self, node: str) -> str:
        r = virsh("domstate", self.domain(node), check=False)
        if r.returncode != 0:
            return "missing"
        state = r.stdout.strip()
        # "in shutdown" still runs (an ACPI shutdown under way); "shut off"/"crashed" are stopped
        return {"running": "running", "blocked": "running", "in shutdown": "running",
                "paused": "paused", "pmsuspended": "paused"}.get(state, "stopped")

    def is_plugged(self, node: str) -> bool:
        r = virsh("domif-getlink", self.domain(node), self._mac(node), check=False)
        return r.returncode == 0 and r.stdout.strip().split()[-1] == "up"

    def memory_bytes(self, node: str) -> int | None:
        """The qemu process's resident memory (what the VM costs the host)."""
        r = virsh("dommemstat", self.domain(node), check=False)
        stats = dict(line.split()[:2] for line in r.stdout.splitlines() if len(line.split()) >= 2)
        return int(stats["rss"]) * 1024 if "rss" in stats else None

    # ------------------------------------------------------------ fencing (fencegate.GateFencing)
    gate_engine = "libvirt"           # the gate answers for this run's libvirt domains

    def gate_address(self) -> str:
        """The host's address on the run's cluster network, as libvirt defined it."""
        xml = virsh("net-dumpxml", f"{PREFIX}-{self.run_id}-cluster").stdout
        for ip in ElementTree.fromstring(xml).iter("ip"):
            if ip.get("address") and ipaddress.ip_address(ip.get("address")) in ipaddress.ip_network(self.topology.subnet):
                return ip.get("address")
        raise BackendError(f"libvirt network {PREFIX}-{self.run_id}-cluster has no host address in {self.topology.subnet}")

    def gate_api_version(self) -> str:
        return "1.41"                 # any version fence_docker accepts: the gate is not Docker

    def power_name(self, node: str) -> str:
        return self.domain(node)

    def describe(self) -> dict:
        return {**super().describe(), "directory": str(self.dir), "subnet": self.topology.subnet,
                "nodes": {h: {"domain": self.domain(h), "ip": self._ip(h)} for h in self.hosts()},
                "clock": dict(self.clock),
                "shell": shlex.join(self.login_argv(self.topology.nodes[0].name))}
