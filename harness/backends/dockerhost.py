"""Check and prepare the host for the Docker backend: a running engine and debootstrap.

`problems()` explains exactly what is missing; `prepare()` fixes it on a Debian
host where we are root (install docker.io/debootstrap, start dockerd).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time

from . import HostNotReady

DOCKER_SOCK = "/var/run/docker.sock"
DOCKERD_LOG = "/var/log/ha-harness-dockerd.log"
APT_PACKAGES = ["docker.io", "debootstrap", "iptables"]


def engine_answers(timeout: float = 5.0) -> bool:
    try:
        import docker
        docker.DockerClient(base_url=f"unix://{DOCKER_SOCK}", timeout=timeout).ping()
        return True
    except Exception:
        return False


def problems() -> list[str]:
    """What keeps this host from running a Docker-backed cluster, one line each."""
    found = []
    if not shutil.which("dockerd"):
        found.append("dockerd is not installed: run `python -m harness host prepare` "
                     "(or `apt-get install docker.io`)")
    elif not engine_answers():
        found.append(f"the Docker engine is not running ({DOCKER_SOCK} does not answer): "
                     "run `python -m harness host prepare` (or start dockerd)")
    if not shutil.which("debootstrap"):
        found.append("debootstrap is not installed (needed to build the node base image "
                     "offline): run `python -m harness host prepare`")
    return found


def _apt_install(packages: list[str], log) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=log, stderr=log)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                   check=True, env=env, stdout=log, stderr=log)


def _start_dockerd(timeout: float = 60.0) -> None:
    logf = open(DOCKERD_LOG, "ab")
    # A session of its own: dockerd must outlive the tox/pytest process that started it.
    subprocess.Popen(["dockerd"], stdout=logf, stderr=logf, stdin=subprocess.DEVNULL,
                     start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_answers(timeout=2):
            return
        time.sleep(0.5)
    raise HostNotReady(f"dockerd did not answer within {timeout:.0f}s; see {DOCKERD_LOG}")


def prepare(say=print) -> None:
    """Make this host ready; idempotent, and quiet about what is already fine."""
    missing = [p for p, exe in (("docker.io", "dockerd"), ("debootstrap", "debootstrap"),
                                ("iptables", "iptables")) if not shutil.which(exe)]
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise HostNotReady(f"missing {', '.join(missing)} and cannot install them "
                               "(needs root on a Debian/Ubuntu host)")
        say(f"installing {' '.join(missing)} with apt-get ...")
        with open("/var/log/ha-harness-apt.log", "ab") as log:
            _apt_install(missing, log)
    if not engine_answers():
        if os.geteuid() != 0:
            raise HostNotReady("the Docker engine is not running and we are not root to start it")
        say("starting dockerd ...")
        _start_dockerd()
    say("host ready: Docker engine answers, debootstrap present")
