"""Docker node images built offline: a debootstrap base, then `docker build` layers
(the recipes are data in harness/images/).

Each image is tagged by a hash of its recipe (and of the image below it), so
an unchanged recipe is reused and any change rebuilds from that layer up.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..images import HERE, LAYERS
from ..labels import IMAGE_LABEL
from . import BackendError

REPO = "ha-harness"
LOCK_FILE = "/var/lock/ha-harness-images.lock"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


class ImageBuildError(BackendError):
    pass


@dataclass
class BuildResult:
    tag: str
    built: bool          # False when an existing image was reused
    seconds: float


def _tree_hash(directory: Path, salt: str = "") -> str:
    h = hashlib.sha256(salt.encode())
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(path.relative_to(directory).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def base_tag(mirror: str = DEFAULT_MIRROR) -> str:
    return f"{REPO}/base:{_tree_hash(HERE / 'base', mirror)}"


def layer_tag(layer: str, below: str) -> str:
    if layer not in LAYERS:
        raise ImageBuildError(f"unknown image layer {layer!r} (known: {', '.join(LAYERS)})")
    return f"{REPO}/{layer}:{_tree_hash(HERE / layer, below)}"


def _exists(client, tag: str) -> bool:
    import docker
    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


@contextlib.contextmanager
def _build_lock():
    # Concurrent runs share images: one builds, the others wait and reuse.
    with open(LOCK_FILE, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


ROOTFS_DIR = Path("/var/tmp")
ROOTFS_PREFIX = "ha-harness-rootfs-"


def remove_stale_rootfs() -> list[str]:
    """Rootfs trees of builds whose process is gone (a build killed hard cannot clean up)."""
    removed = []
    for path in ROOTFS_DIR.glob(f"{ROOTFS_PREFIX}*"):
        pid = path.name[len(ROOTFS_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(str(path))
    return removed


class _Progress:
    """Long builds say where they are: the latest output line at most every `every` s,
    so a terminal or CI log never goes silent for minutes."""

    def __init__(self, what: str, log, every: float = 30.0):
        self.what, self.log, self.every = what, log, every
        self.started = self.last = time.monotonic()

    def line(self, text: str, now: bool = False) -> None:
        t = time.monotonic()
        if text and (now or t - self.last >= self.every):
            self.log(f"{self.what} +{t - self.started:.0f}s: {text[:120]}")
            self.last = t


def _build_base(tag: str, mirror: str, log) -> None:
    import os
    recipe = yaml.safe_load((HERE / "base" / "recipe.yaml").read_text())
    for path in remove_stale_rootfs():
        log(f"removed stale build tree {path}")
    with tempfile.TemporaryDirectory(prefix=f"{ROOTFS_PREFIX}{os.getpid()}-", dir=ROOTFS_DIR) as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", f"--variant={recipe['variant']}",
               f"--include={','.join(recipe['include'])}", recipe["suite"], str(root), mirror]
        log(f"debootstrap {recipe['suite']} ({recipe['variant']}) ...")
        progress, tail = _Progress("debootstrap", log), []
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as run:
            for text in run.stdout:
                tail = [*tail[-9:], text.strip()]
                progress.line(text.strip())
        if run.returncode != 0:
            raise ImageBuildError(f"debootstrap failed: {' | '.join(tail[-4:])}")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(["docker", "import", "-c", f"LABEL {IMAGE_LABEL}=base", "-", tag],
                             stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if imp.returncode != 0 or tar.returncode != 0:
            raise ImageBuildError(f"docker import failed: {imp.stderr.strip()}")


def _build_layer(client, layer: str, below: str, tag: str, log) -> None:
    log(f"docker build {layer} layer on {below} ...")
    stream = client.api.build(path=str(HERE / layer), tag=tag, network_mode="host", rm=True,
                              forcerm=True, buildargs={"BASE": below},
                              labels={IMAGE_LABEL: layer}, decode=True)
    tail: list[str] = []
    progress = _Progress(f"build {layer}", log)
    for chunk in stream:
        if "error" in chunk:
            raise ImageBuildError(f"building the {layer} layer failed: {chunk['error'].strip()} "
                                  f"(last output: {' | '.join(tail[-5:])})")
        line = chunk.get("stream", "").strip()
        if line:
            tail = [*tail[-9:], line]
            progress.line(line, now=line.startswith("Step "))


def ensure_images(client, layers=("cluster",), mirror: str = DEFAULT_MIRROR, log=print,
                  rebuild: bool = False) -> list[BuildResult]:
    """Return the build/reuse result of every image up to the last layer."""
    results = []
    with _build_lock():
        tag = base_tag(mirror)
        results.append(_ensure(client, tag, rebuild, log,
                               lambda t: _build_base(t, mirror, log)))
        for layer in layers:
            below, tag = tag, layer_tag(layer, tag)
            results.append(_ensure(client, tag, rebuild, log,
                                   lambda t, l=layer, b=below: _build_layer(client, l, b, t, log)))
    return results


def _ensure(client, tag, rebuild, log, build) -> BuildResult:
    if not rebuild and _exists(client, tag):
        log(f"image {tag} reused")
        return BuildResult(tag, False, 0.0)
    start = time.monotonic()
    build(tag)
    took = time.monotonic() - start
    log(f"built {tag} in {took:.1f}s")
    _prune_stale(client, tag, log)
    return BuildResult(tag, True, took)


def _prune_stale(client, tag: str, log) -> None:
    """Drop older recipes of the same image (2 GB each for OpenStack); in-use ones stay."""
    import docker
    repo = tag.rsplit(":", 1)[0]
    for image in client.images.list(name=repo, filters={"label": IMAGE_LABEL}):
        for old in image.tags:
            if old != tag:
                try:
                    client.images.remove(old)
                    log(f"removed stale image {old}")
                except docker.errors.APIError:
                    pass        # a container still uses it


def remove_images(client) -> list[str]:
    removed = []
    for image in client.images.list(filters={"label": IMAGE_LABEL}):
        for tag in image.tags or [image.id]:
            client.images.remove(tag, force=True)
            removed.append(tag)
    return removed

