"""Provisioning shared by every backend: render the cluster's files, start the
stack, load the CIB. It drives nodes only through Backend.exec/copy."""
from __future__ import annotations

import secrets
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2

from .cluster import Cluster, poll

TEMPLATES = Path(__file__).parent / "templates"


def _crm_quote(value) -> str:
    s = str(value)
    return s if s and all(ch.isalnum() or ch in "._/:-,=" for ch in s) else shlex.quote(s)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    env.filters["crm_quote"] = _crm_quote
    return env


def render_corosync_conf(topology, run_id: str) -> str:
    return _env().get_template("corosync.conf.j2").render(t=topology, run_id=run_id)


def render_cib(topology) -> str:
    return _env().get_template("cib.crm.j2").render(t=topology).strip() + "\n"


class Provisioner:
    def __init__(self, backend, log=print):
        self.backend = backend
        self.log = log

    @property
    def topology(self):
        return self.backend.topology     # the effective (possibly relocated) plan

    def _each(self, fn) -> None:
        nodes = [n.name for n in self.topology.nodes]
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(fn, nodes))

    def write_cluster_files(self) -> None:
        conf = render_corosync_conf(self.topology, self.backend.run_id).encode()
        authkey = secrets.token_bytes(256)

        def write(node):
            self.backend.copy(node, conf, "/etc/corosync/corosync.conf")
            self.backend.copy(node, authkey, "/etc/corosync/authkey", mode=0o400)
        self._each(write)

    def wait_booted(self, node: str, timeout: float = 120) -> None:
        """Until systemd in the node finished booting (its bus may not exist yet at first)."""
        def check():
            r = self.backend.exec(node, "systemctl is-system-running --wait", timeout=timeout, check=False)
            state = r.out.strip() or r.err.strip()
            return state in ("running", "degraded"), f"{node}: systemd is {state!r}"
        poll(check, timeout, interval=0.3, what=f"{node} booted")

    def start_stack(self, node: str) -> None:
        """Start corosync then pacemaker on one node (also used to rejoin a node)."""
        self.wait_booted(node)
        self.backend.exec(node, "systemctl start corosync && systemctl start pacemaker", timeout=120)

    def bring_up(self) -> Cluster:
        self._each(self.wait_booted)
        self.log("nodes booted (systemd running)")
        self.write_cluster_files()
        self._each(self.start_stack)
        self.log("corosync and pacemaker started on every node")
        cluster = Cluster(self.backend)
        state = cluster.wait_formed(timeout=180)
        self.log(f"cluster formed: {len(state.online)} nodes online, DC {state.dc}, quorum")
        self.load_cib(cluster)
        cluster.wait_settled(timeout=180)
        self.log("CIB loaded and cluster settled")
        return cluster

    def load_cib(self, cluster: Cluster) -> None:
        node = cluster.any_online_node()
        self.backend.copy(node, render_cib(self.topology).encode(), "/root/harness-cib.crm")
        self.backend.exec(node, "crm configure load update /root/harness-cib.crm", timeout=120)
