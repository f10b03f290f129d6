"""Vagrant boxes built offline from the node image layers.

A box is the topology's last Docker layer plus the box layer (templates/box/: kernel,
sshd, the vagrant user, udev), flattened into an ext4 filesystem image (`mkfs.ext4 -d`, no
loop device) converted to qcow2, booted by direct kernel boot with the kernel and initrd
kept on the host (no bootloader). The package sets are the layers' own: one list each.
A box is named by the hash of every recipe it comes from (vagrant.box_name).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from ..labels import IMAGE_LABEL, PREFIX
from .dockerimages import REPO, BuildResult, ImageBuildError, _tree_hash

BOX_LAYER = Path(__file__).parent / "templates" / "box"
WORK_DIR = Path("/var/tmp")
WORK_PREFIX = "ha-harness-box-"
LOCK_FILE = "/var/lock/ha-harness-boxes.lock"
# Vagrant's well-known insecure key pair (the box authorizes it, Vagrant logs in with it);
# Debian ships it inside the vagrant gem
PUBLIC_KEY_GLOBS = ("/usr/share/vagrant/keys/vagrant.pub",
                    "/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub",
                    "/usr/lib/ruby/vendor_ruby/vagrant/keys/vagrant.pub")


def recipe() -> dict:
    return yaml.safe_load((BOX_LAYER / "recipe.yaml").read_text())


def public_key() -> Path:
    for pattern in PUBLIC_KEY_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[-1])
    raise ImageBuildError("Vagrant's insecure public key (vagrant.pub) is not on this host: "
                          "run `python -m harness host prepare --backend vagrant`")


@contextlib.contextmanager
def _lock():
    with open(LOCK_FILE, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)     # one box build at a time; a second waits, then reuses
        yield


def box_layer_tag(below: str) -> str:
    return f"{REPO}/box:{_tree_hash(BOX_LAYER, below)}"


def _build_box_layer(client, below: str, tag: str, log) -> None:
    """docker build of templates/box on `below` (the topology's last node image)."""
    r = recipe()
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=WORK_DIR) as ctx:
        shutil.copytree(BOX_LAYER, ctx, dirs_exist_ok=True)
        shutil.copy(public_key(), Path(ctx) / "vagrant.pub")
        log(f"docker build box layer on {below} ...")
        stream = client.api.build(path=ctx, tag=tag, network_mode="host", rm=True, forcerm=True,
                                  buildargs={"BASE": below, "PACKAGES": " ".join(r["include"]),
                                             "BOX_USER": r["user"]},
                                  labels={IMAGE_LABEL: "box"}, decode=True,
                                  # lowest CPU weight: a build beside a running cluster yields to it
                                  container_limits={"cpushares": 2})
        tail: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"building the box layer failed: {chunk['error'].strip()} "
                                      f"(last output: {' | '.join(tail[-5:])})")
            if chunk.get("stream", "").strip():
                tail = [*tail[-9:], chunk["stream"].strip()]


def _export_rootfs(client, image: str, root: Path) -> None:
    """The image's filesystem as a directory (docker create + export: no container runs)."""
    container = client.api.create_container(image, command=["true"], labels={IMAGE_LABEL: "box-export"})
    try:
        root.mkdir()
        with subprocess.Popen(["tar", "-x", "--numeric-owner", "-C", str(root)],
                              stdin=subprocess.PIPE) as untar:
            for chunk in client.api.export(container["Id"]):
                untar.stdin.write(chunk)
            untar.stdin.close()
        if untar.returncode != 0:
            raise ImageBuildError(f"unpacking {image} failed (tar exited {untar.returncode})")
    finally:
        client.api.remove_container(container["Id"], force=True)
    # what Docker bind-mounts into containers is empty in an export: a VM needs its own
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 defaults,errors=remount-ro 0 1\n")
    resolv = root / "etc/resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text("")           # no DNS: nodes reach only each other, by /etc/hosts


def _boot_files(root: Path, dest: Path) -> None:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise ImageBuildError("the box layer installed no kernel/initrd in /boot")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(kernels[-1], dest / "vmlinuz")
    shutil.copy(initrds[-1], dest / "initrd.img")


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"{what} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def _package(root: Path, work: Path, size_gb: int) -> Path:
    """ext4 image of `root` -> qcow2 -> a libvirt box archive (metadata.json + box.img)."""
    raw, box_dir = work / "root.ext4", work / "box"
    box_dir.mkdir()
    _run(["truncate", "-s", f"{size_gb}G", str(raw)], "truncate")
    _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw)], "mkfs.ext4 -d")
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(box_dir / "box.img")], "qemu-img convert")
    raw.unlink()
    (box_dir / "metadata.json").write_text(json.dumps(
        {"provider": "libvirt", "format": "qcow2", "virtual_size": size_gb}))
    archive = work / "box.tar"
    with tarfile.open(archive, "w") as tar:       # uncompressed: qcow2 is sparse already
        for name in ("metadata.json", "box.img"):
            tar.add(box_dir / name, arcname=name)
    return archive


def _remove_work() -> list[str]:
    removed = [str(p) for p in WORK_DIR.glob(f"{WORK_PREFIX}*")]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


def remove_stale_work() -> list[str]:
    """Work trees of box builds killed hard (a finished or failed build removes its own);
    none while a build is running."""
    with open(LOCK_FILE, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return []
        return _remove_work()


def build_box(client, image: str, box: str, boot_dir: Path, add_box, log) -> float:
    """Box `box` from node image `image`: box layer, rootfs, boot files, `vagrant box add`
    (through `add_box(name, archive)`). Returns the seconds taken by the box layer."""
    t0 = time.monotonic()
    layer = box_layer_tag(image)
    _build_box_layer(client, image, layer, log)
    layer_s = time.monotonic() - t0
    log(f"box layer {layer} built in {layer_s:.1f}s; packing {box} ...")
    with tempfile.TemporaryDirectory(prefix=WORK_PREFIX, dir=WORK_DIR) as tmp:
        work = Path(tmp)
        _export_rootfs(client, layer, work / "rootfs")
        _boot_files(work / "rootfs", boot_dir)
        archive = _package(work / "rootfs", work, int(recipe()["virtual_size"]))
        shutil.rmtree(work / "rootfs", ignore_errors=True)
        add_box(box, archive)
    client.images.remove(layer, force=True)     # the box holds it now; 1-2 GB less on disk
    return layer_s


def ensure_box(client, images: list[BuildResult], box: str, boot_dir: Path, have_box, add_box,
               log=print, rebuild: bool = False) -> BuildResult:
    """The box of the node images `images` (the Docker layers, built or reused already)."""
    with _lock():
        if not rebuild and have_box(box) and (boot_dir / "vmlinuz").exists():
            log(f"box {box} reused")
            return BuildResult(box, False, 0.0)
        for path in _remove_work():          # we hold the lock: no build is running
            log(f"removed stale box work tree {path}")
        start = time.monotonic()
        build_box(client, images[-1].tag, box, boot_dir, add_box, log)
        took = time.monotonic() - start
        log(f"built box {box} in {took:.1f}s")
        return BuildResult(box, True, took)


def is_box(name: str) -> bool:
    return name.startswith(f"{PREFIX}-")
