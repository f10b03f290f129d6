"""Vagrant/libvirt backend: the host it needs, the per-run Vagrantfile and the platform
(boxes: vagrantbox.py; nodes: vagrantnodes.py; runs on this host: vagrantruns.py).

What works on this machine kind is in FIELD-NOTES ("Vagrant/libvirt VMs as cluster
nodes"): qemu under TCG, libvirtd/virtlogd started by hand, /dev/kvm root:kvm 0660.
"""
from __future__ import annotations

import fcntl
import grp
import hashlib
import ipaddress
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from functools import lru_cache
from pathlib import Path

import jinja2

from ..images import HERE as IMAGES, LAYERS
from ..labels import PREFIX
from ..topology import QNETD
from . import BackendError, HostNotReady, Platform

TEMPLATES = Path(__file__).parent / "templates"
BOX_RECIPE = TEMPLATES / "box"              # the box layer: its recipe and files
BOOT_DIR = Path("/var/lib/ha-harness/boxes")      # the kernel and initrd of each box
# quiet: every console line is an emulated serial write, slow under TCG
CMD_LINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet loglevel=3 systemd.show_status=false"
DEFAULT_MGMT_SUBNET = "192.168.121.0/24"           # vagrant-libvirt's own default
CPUS, MEMORY_MB, OPENSTACK_MEMORY_MB = 1, 2048, 3072
BOOT_TIMEOUT = 900                                 # s until Vagrant reaches a VM over SSH
QNETD_MEMORY_MB = 1024                             # the arbiter runs corosync-qnetd only
RUN_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")

# (program, Debian package that ships it), and the vagrant-libvirt package for the plugin;
# daemons live in sbin, outside a user's PATH
PROGRAMS = (("vagrant", "vagrant"), ("libvirtd", "libvirt-daemon-system"),
            ("virtlogd", "libvirt-daemon-system"), ("qemu-system-x86_64", "qemu-system-x86"),
            ("qemu-img", "qemu-utils"), ("dnsmasq", "dnsmasq-base"), ("virsh", "libvirt-clients"),
            ("mkfs.ext4", "e2fsprogs"))
DAEMON_SOCKETS = {"virtlogd": "/run/libvirt/virtlogd-sock", "libvirtd": "/run/libvirt/libvirt-sock"}
DAEMON_LOG = "/var/log/ha-harness-libvirt.log"
KVM = "/dev/kvm"
KVM_GET_API_VERSION, KVM_CREATE_VM = 0xAE00, 0xAE01
PREPARE = "run `python -m harness host prepare --backend vagrant`"


# ---------------------------------------------------------------- host

def _which(program: str) -> str | None:
    return shutil.which(program, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def _vagrant(*args: str, timeout: float = 60) -> str:
    # no checkpoint: Vagrant would otherwise ask HashiCorp's servers for a newer version
    env = dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1")
    return subprocess.run(["vagrant", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=True).stdout


@lru_cache(maxsize=1)
def plugin_version() -> str | None:
    """vagrant-libvirt's version as Vagrant loads it (system or user plugin), or None."""
    try:
        out = _vagrant("plugin", "list")
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"^vagrant-libvirt \(([^,)]+)", out, re.M)
    return m and m.group(1)


def daemon_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(2)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def accelerator() -> tuple[str, str]:
    """("kvm", "") when guests can use /dev/kvm, else ("tcg", why not). An answering
    /dev/kvm is not enough: a paravirtual one (kvm_pvm, no vmx/svm in the CPU) hangs stock
    guests (FIELD-NOTES), so the CPU flags must say hardware virtualisation too."""
    try:
        fd = os.open(KVM, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "tcg", f"{KVM}: {e.strerror.lower()}"
    try:
        if fcntl.ioctl(fd, KVM_GET_API_VERSION) != 12:
            return "tcg", f"{KVM} speaks an unknown KVM API"
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
    except OSError as e:
        return "tcg", f"{KVM} cannot create a VM ({e.strerror.lower()})"
    finally:
        os.close(fd)
    flags = re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    if not flags or not set(flags.group(1).split()) & {"vmx", "svm"}:
        return "tcg", f"{KVM} answers but the CPU has no vmx/svm (a paravirtual KVM: stock guests hang)"
    return "kvm", ""


def kvm_mode_problem() -> str | None:
    """/dev/kvm must be root:kvm 0660: at Docker's 0600 libvirtd re-probes QEMU on every
    call and each VM define takes 50-90 s instead of 0.02 s (FIELD-NOTES)."""
    try:
        st = os.stat(KVM)
    except FileNotFoundError:
        return None
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    if group == "kvm" and mode & 0o660 == 0o660:
        return None
    return (f"{KVM} is group {group} mode {mode:04o}, not kvm 0660: each VM define takes "
            f"50-90 s as libvirtd re-probes QEMU; {PREPARE}")


def host_problems() -> list[str]:
    """What keeps this host from running VM clusters, one line each."""
    found = [f"{program} is not installed (package {package}): {PREPARE}"
             for program, package in PROGRAMS if not _which(program)]
    if _which("vagrant") and not plugin_version():
        found.append(f"the vagrant-libvirt plugin is not installed: {PREPARE}")
    for daemon, sock in DAEMON_SOCKETS.items():
        if _which(daemon) and not daemon_answers(sock):
            found.append(f"{daemon} is not running ({sock} does not answer): {PREPARE}")
    if _which("virsh") and daemon_answers(DAEMON_SOCKETS["libvirtd"]) and not pool_active():
        found.append(f"libvirt has no active storage pool {POOL!r} (where Vagrant puts VM disks): {PREPARE}")
    kvm = kvm_mode_problem()
    from . import dockerhost           # boxes are built from the Docker node images
    return found + ([kvm] if kvm else []) + dockerhost.problems()


POOL, POOL_DIR = "default", "/var/lib/libvirt/images"


def virsh(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """virsh on the system connection (the one vagrant-libvirt uses); raises BackendError
    naming the command when `check` and it fails."""
    done = subprocess.run(["virsh", "-c", "qemu:///system", "-q", *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise BackendError(f"virsh {' '.join(args)}: {(done.stderr or done.stdout).strip()[:200]}")
    return done


def _virsh_ok(*args: str) -> bool:
    return virsh(*args, check=False, timeout=60).returncode == 0


def pool_active() -> bool:
    return POOL in virsh("pool-list", "--name", check=False, timeout=60).stdout.split()


def _ensure_pool() -> None:
    if not _virsh_ok("pool-info", POOL):
        _virsh_ok("pool-define-as", POOL, "dir", "--target", POOL_DIR)
        _virsh_ok("pool-build", POOL)
    if not pool_active():
        _virsh_ok("pool-start", POOL)
    _virsh_ok("pool-autostart", POOL)
    if not pool_active():
        raise HostNotReady(f"cannot start libvirt storage pool {POOL!r} at {POOL_DIR}")


def _start_daemon(daemon: str, timeout: float = 30.0) -> None:
    # --daemon forks and detaches: it outlives the harness command that started it; its
    # early errors go to a file, never to a pipe the detached child would keep open
    with open(DAEMON_LOG, "ab") as log:
        subprocess.run([_which(daemon), "--daemon"], check=True, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=log, timeout=timeout, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not daemon_answers(DAEMON_SOCKETS[daemon]):
        if time.monotonic() > deadline:
            raise HostNotReady(f"{daemon} did not answer on {DAEMON_SOCKETS[daemon]} within "
                               f"{timeout:.0f}s; see {DAEMON_LOG}")
        time.sleep(0.5)


def _fix_kvm_mode() -> None:
    try:
        grp.getgrnam("kvm")
    except KeyError:
        subprocess.run(["groupadd", "--system", "kvm"], check=True)
    os.chown(KVM, 0, grp.getgrnam("kvm").gr_gid)
    os.chmod(KVM, 0o660)


def _missing_packages() -> list[str]:
    missing = [package for program, package in PROGRAMS if not _which(program)]
    if not plugin_version():
        missing.append("vagrant-libvirt")
    return list(dict.fromkeys(missing))


def prepare(say=print) -> None:
    """Make this host ready (idempotent): packages, the two daemons, /dev/kvm's mode."""
    from . import dockerhost
    from .dockerhost import _apt_install
    dockerhost.prepare(say)             # boxes are built from the Docker node images
    missing = _missing_packages()
    down = [d for d, sock in DAEMON_SOCKETS.items() if not daemon_answers(sock)]
    todo = ([f"install {' '.join(missing)}"] if missing else []) + [f"start {d}" for d in down] + \
        ([f"fix {KVM}'s mode"] if kvm_mode_problem() else [])
    if todo and (os.geteuid() != 0 or not _which("apt-get")):
        raise HostNotReady(f"cannot {', '.join(todo)}: needs root on a Debian/Ubuntu host")
    if missing:
        say(f"installing {' '.join(missing)} with apt-get ...")
        with open("/var/log/ha-harness-apt.log", "ab") as log:
            _apt_install(missing, log)
        plugin_version.cache_clear()
    if kvm_mode_problem():
        say(f"setting {KVM} to root:kvm 0660 ...")
        _fix_kvm_mode()
    for daemon in ("virtlogd", "libvirtd"):        # libvirtd logs guest consoles through virtlogd
        if not daemon_answers(DAEMON_SOCKETS[daemon]):
            say(f"starting {daemon} ...")
            _start_daemon(daemon)
    _ensure_pool()
    accel, why = accelerator()
    say(f"host ready: vagrant, vagrant-libvirt, libvirtd and virtlogd; guests run under "
        f"{accel.upper()}{f' ({why})' if why else ''}")


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def version() -> str | None:
    """What runs the VMs, for reports: Vagrant, the plugin, QEMU and the accelerator."""
    vagrant = _which("vagrant") and _first_line(["vagrant", "--version"])
    if not vagrant:
        return None
    qemu = _first_line(["qemu-system-x86_64", "--version"]) or "no qemu-system-x86_64"
    accel, why = accelerator()
    return (f"{vagrant}, vagrant-libvirt {plugin_version() or 'missing'}, {qemu}, "
            f"{accel.upper()}{f' ({why})' if why else ''}")


# ---------------------------------------------------------------- Vagrantfile

def _recipe_hash(parts: list[Path]) -> str:
    h = hashlib.sha256()
    for part in parts:
        files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
        for path in files:
            h.update(path.relative_to(part.parent).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def box_name(layers) -> str:
    """The box of a topology's layers, named by a hash of every recipe it is built from
    (the base, each layer in order, the box recipe): a changed recipe is a new box."""
    unknown = [layer for layer in layers if layer not in LAYERS]
    if unknown:
        raise BackendError(f"unknown image layer {unknown[0]!r} (known: {', '.join(LAYERS)})")
    digest = _recipe_hash([IMAGES / "base", *(IMAGES / layer for layer in layers), BOX_RECIPE])
    return f"{PREFIX}-{layers[-1] if layers else 'base'}-{digest}"


def boot_files(box: str) -> tuple[str, str]:
    """The kernel and initrd the box build leaves on the host for direct kernel boot."""
    return str(BOOT_DIR / box / "vmlinuz"), str(BOOT_DIR / box / "initrd.img")


def cluster_mac(ip: str) -> str:
    """A fixed MAC per cluster address (libvirt's 52:54:00 prefix, then the address's last
    three bytes): unique on the run's network, and the handle `virsh domif-setlink` takes
    to unplug a node."""
    return "52:54:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed[1:])


def _vms(topology) -> list[dict]:
    memory = OPENSTACK_MEMORY_MB if "openstack" in topology.layers else MEMORY_MB
    vms = [dict(name=n.name, ip=n.ip, cpus=CPUS, memory=memory, node=True) for n in topology.nodes]
    if topology.corosync.qdevice:
        vms.append(dict(name=QNETD, ip=topology.corosync.qdevice.ip, cpus=CPUS, memory=QNETD_MEMORY_MB,
                        node=False))
    return [dict(vm, mac=cluster_mac(vm["ip"])) for vm in vms]


def _ruby_str(value) -> str:
    # single quotes: Ruby interpolates nothing in them, only \\ and \' are escapes
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_vagrantfile(topology, run_id: str, box: str, *, driver: str = "qemu",
                       mgmt_subnet: str = DEFAULT_MGMT_SUBNET, shares: dict | None = None) -> str:
    """The Vagrantfile of one run: one VM per node (and the qnetd arbiter), domains
    `<prefix>-<run_id>-<host>`, on networks of this run only. `driver` is "kvm" only when
    accelerator() says so; `mgmt_subnet` must be free on the host, like the cluster's;
    `shares` maps each shared volume's host directory to its path in the nodes."""
    if not RUN_ID.match(run_id):
        raise BackendError(f"run id {run_id!r}: VM and network names take only a-z, 0-9 and -")
    if driver not in ("qemu", "kvm"):
        raise BackendError(f"libvirt driver {driver!r}: must be qemu (TCG) or kvm")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["rb"] = _ruby_str
    kernel, initrd = boot_files(box)
    return env.get_template("Vagrantfile.j2").render(
        run_id=run_id, topology=topology.name, box=box, driver=driver,
        domain_prefix=f"{PREFIX}-{run_id}-", mgmt_network=f"{PREFIX}-{run_id}-mgmt",
        mgmt_subnet=str(ipaddress.ip_network(mgmt_subnet)),
        cluster_network=f"{PREFIX}-{run_id}-cluster",
        netmask=str(ipaddress.ip_network(topology.subnet).netmask),
        kernel=kernel, initrd=initrd, cmd_line=CMD_LINE, vms=_vms(topology), boot_timeout=BOOT_TIMEOUT,
        shares=[dict(host=h, guest=g) for h, g in (shares or {}).items()])


# ---------------------------------------------------------------- platform

class VagrantPlatform(Platform):
    """libvirt on this host driven through Vagrant: VMs booted from boxes built offline."""
    name = "vagrant"
    node_object = "domain"

    def host_problems(self) -> list[str]:
        return host_problems()

    def prepare_host(self, say=print) -> None:
        prepare(say)

    def available(self) -> bool:
        return bool(_which("virsh")) and daemon_answers(DAEMON_SOCKETS["libvirtd"])

    def version(self) -> str | None:
        return version()

    def ensure_images(self, layers, log=print, rebuild: bool = False) -> list:
        """The Docker node images of `layers` (built or reused), then the box made of them."""
        from . import vagrantbox
        from .docker import DockerPlatform, client
        images = DockerPlatform().ensure_images(layers, log=log, rebuild=rebuild)
        box = box_name(layers)
        boot = BOOT_DIR / box
        return [*images, vagrantbox.ensure_box(client(), images, box, boot, have_box, add_box, log=log,
                                               rebuild=rebuild)]

    def remove_images(self) -> list[str]:
        """Every harness box: Vagrant's copy, libvirt's base volume and the boot files."""
        from .vagrantruns import POOL as pool
        removed = []
        for box in [b for b in boxes() if b.startswith(f"{PREFIX}-")]:
            _vagrant("box", "remove", "--force", "--all", box, timeout=300)
            removed.append(f"box {box}")
        listing = virsh("vol-list", pool, check=False, timeout=60).stdout
        for vol in [line.split()[0] for line in listing.splitlines() if line.strip()]:
            if vol.startswith(f"{PREFIX}-") and "_vagrant_box_image_" in vol and _virsh_ok("vol-delete", vol, "--pool", pool):
                removed.append(f"volume {vol}")
        if BOOT_DIR.exists():
            shutil.rmtree(BOOT_DIR, ignore_errors=True)
            removed.append(f"boot files {BOOT_DIR}")
        return removed

    def remove_stale_builds(self) -> list[str]:
        from . import vagrantbox
        return vagrantbox.remove_stale_work()

    def runs(self) -> dict[str, dict]:
        from . import vagrantruns
        return vagrantruns.runs()

    def remove_run(self, run_id: str) -> list[str]:
        from . import vagrantruns
        return vagrantruns.remove_run(run_id)

    def objects_owned_by(self, pid: int) -> list[str]:
        from . import vagrantruns
        return vagrantruns.objects_owned_by(pid)

    def run_objects(self, run_id: str) -> list[str]:
        from . import vagrantruns
        return vagrantruns.run_objects(run_id)


def boxes() -> list[str]:
    """Names of the boxes Vagrant has (`vagrant box list --machine-readable`)."""
    out = _vagrant("box", "list", "--machine-readable")
    return sorted({line.split(",")[3] for line in out.splitlines()
                   if len(line.split(",")) > 3 and line.split(",")[2] == "box-name"})


def have_box(name: str) -> bool:
    return name in boxes()


def add_box(name: str, archive: Path) -> None:
    _vagrant("box", "add", "--force", "--name", name, str(archive), timeout=900)
