"""Provisioning shared by every backend: render the cluster's files, start the
stack, load the CIB. It drives nodes only through Backend.exec/copy."""
from __future__ import annotations

import secrets
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jinja2

from .cluster import Cluster, poll
from .topology import QNETD

TEMPLATES = Path(__file__).parent / "templates"


def _crm_quote(value) -> str:
    s = str(value)
    return s if s and all(ch.isalnum() or ch in "._/:-,=" for ch in s) else shlex.quote(s)


def template_env(subdir: str = "") -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES / subdir),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["crm_quote"] = _crm_quote
    return env



def render_corosync_conf(topology, run_id: str) -> str:
    return template_env().get_template("corosync.conf.j2").render(t=topology, run_id=run_id)


def render_haproxy_cfg(topology) -> str:
    return template_env().get_template("haproxy.cfg.j2").render(t=topology)


def render_cib(topology, stopped=(), fence=None) -> str:
    """The CIB as crmsh commands; resources in `stopped` get target-role=Stopped; `fence`
    is the backend's (stonith agent, params) when the topology fences."""
    params = None
    if fence is not None:
        params = {**fence[1], **({"pcmk_delay_max": f"{topology.fencing.delay_max}s"}
                                 if topology.fencing.delay_max else {})}
    return template_env().get_template("cib.crm.j2").render(
        t=topology, stopped=set(stopped), fence_agent=fence and fence[0], fence_params=params).strip() + "\n"


class Provisioner:
    def __init__(self, backend, log=print):
        self.backend = backend
        self.log = log
        self.control_plane = None      # set when the topology has an OpenStack control plane
        self.agent_overrides = []      # agentpatch.AgentOverride: patched agents in place of stock ones

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

        haproxy = render_haproxy_cfg(self.topology).encode() if self.topology.haproxy else None

        def write(node):
            self.backend.copy(node, conf, "/etc/corosync/corosync.conf")
            self.backend.copy(node, authkey, "/etc/corosync/authkey", mode=0o400)
            if haproxy:
                self.backend.copy(node, haproxy, "/etc/haproxy/haproxy.cfg")
        self._each(write)

    def wait_booted(self, node: str, timeout: float = 120) -> None:
        """Until systemd in the node finished booting (its bus may not exist yet at first)."""
        def check():
            r = self.backend.exec(node, "systemctl is-system-running --wait", timeout=timeout, check=False)
            state = r.out.strip() or r.err.strip()
            return state in ("running", "degraded"), f"{node}: systemd is {state!r}"
        poll(check, timeout, interval=0.3, what=f"{node} booted")

    def start_stack(self, node: str) -> None:
        """Start corosync (and its quorum device client) then pacemaker on one node (also
        used to rejoin a node)."""
        self.wait_booted(node)
        qdevice = "systemctl start corosync-qdevice && " if self.topology.corosync.qdevice else ""
        self.backend.exec(node, f"systemctl start corosync && {qdevice}systemctl start pacemaker", timeout=120)

    def start_qnetd(self) -> None:
        """The quorum device's arbiter: corosync-qnetd without TLS (it serves only this run's
        isolated network), listening before any node's qdevice looks for it."""
        self.wait_booted(QNETD)
        self.backend.copy(QNETD, b'COROSYNC_QNETD_OPTIONS="-s off"\n', "/etc/default/corosync-qnetd")
        self.backend.exec(QNETD, "systemctl start corosync-qnetd", timeout=60)
        poll(lambda: (self.backend.exec(QNETD, ["corosync-qnetd-tool", "-s"], check=False).ok, "not answering"),
             30, interval=0.5, what="corosync-qnetd answering")

    def install_agents(self) -> None:
        """Copy resource agent directories (the project's own, a user's RA checkout) into every node."""
        files = [(a.provider, p) for a in self.topology.agents for p in sorted(Path(a.path).iterdir())
                 if p.is_file()]

        def install(node):
            for provider, path in files:
                self.backend.copy(node, path.read_bytes(), f"/usr/lib/ocf/resource.d/{provider}/{path.name}",
                                  mode=0o755)
        self._each(install)
        self.apply_agent_overrides()

    def apply_agent_overrides(self, nodes=None) -> None:
        """Patched agents in place of the stock files; stock files back where no override
        asks for a patch (a kept cluster reused by a stock session after a patched one)."""
        from . import agentpatch
        for node in nodes or [n.name for n in self.topology.nodes]:
            for line in agentpatch.apply(self.backend, node, self.agent_overrides):
                self.log(line)

    def bring_up(self, cluster: Cluster | None = None) -> Cluster:
        """Provision the nodes; `cluster` (re-provisioning) is the object scenarios already hold."""
        self._each(self.wait_booted)
        self.log("nodes booted (systemd running)")
        self.write_cluster_files()
        self.install_agents()
        if self.topology.corosync.qdevice:
            self.start_qnetd()
            self.log(f"quorum device arbiter (corosync-qnetd) up at {self.topology.corosync.qdevice.ip}")
        self._each(self.start_stack)
        self.log("corosync and pacemaker started on every node")
        cluster = cluster or Cluster(self.backend)
        cluster.expected_down.clear()
        state = cluster.wait_formed(timeout=180 * self.backend.wait_factor)
        self.log(f"cluster formed: {len(state.online)} nodes online, DC {state.dc}, quorum")
        if self.topology.openstack:
            self.bring_up_openstack(cluster)
        else:
            self.load_cib(cluster)
            cluster.wait_settled(timeout=180 * self.backend.wait_factor)
            self.log("CIB loaded and cluster settled")
        return cluster

    def bring_up_openstack(self, cluster: Cluster) -> None:
        from .openstack import ControlPlane
        cp = self.control_plane = ControlPlane(self.backend, cluster, log=self.log)
        cp.write_configs()
        rsc = self.topology.resources
        # Three phases: infrastructure (DB, MQ, VIP) for the bootstrap; then Keystone
        # alone, to create the catalog; then everything else, whose users now exist.
        early = set(rsc.primitives_under(cp.spec.bootstrap_with))
        identity = [p for p in rsc.primitives_under([cp.spec.identity]) if p not in early]
        later = [p.id for p in rsc.primitives if p.id not in early and p.id not in identity]
        self.load_cib(cluster, stopped=[*identity, *later])
        cluster.wait_settled(timeout=300 * self.backend.wait_factor)
        holder = cluster.vip_holder(cp.spec.vip)
        self.log(f"bootstrap resources running on {holder}; bootstrapping OpenStack there")
        cp.bootstrap(holder)
        self.start_resources(holder, identity)
        cluster.wait_settled(timeout=300 * self.backend.wait_factor)
        cp.wait_apis(services=["keystone"])
        self.create_catalog(cp)
        self.log("Keystone up, catalog created")
        self.start_resources(holder, later)
        cluster.wait_settled(timeout=600 * self.backend.wait_factor)
        self.log(f"all resources started; APIs answer through the VIP after {cp.wait_apis():.0f}s more")
        cp.discover_compute()
        cp.wait_volume_service()
        self.log("compute host discovered, volume service up")
        cp.lift_quotas()
        cp.create_segment()
        self.forget_bring_up_failures(cluster)

    def create_catalog(self, cp, attempts: int = 5) -> None:
        """The catalog through the VIP; a connection Keystone drops while it settles (seen on
        os-ap-3node: "Connection reset by peer" mid-catalog) is retried with back-off once
        Keystone answers again; the catalog calls are idempotent."""
        import tenacity
        from keystoneauth1.exceptions.connection import ConnectFailure

        def before_retry(state):
            self.log(f"catalog attempt {state.attempt_number}: {state.outcome.exception()}; "
                     "retrying once Keystone answers")
            cp.wait_apis(services=["keystone"])
        tenacity.Retrying(retry=tenacity.retry_if_exception_type(ConnectFailure),
                          stop=tenacity.stop_after_attempt(attempts), wait=tenacity.wait_exponential(min=2, max=20),
                          before_sleep=before_retry, reraise=True)(cp.create_catalog)

    def forget_bring_up_failures(self, cluster: Cluster) -> None:
        """Say which starts failed (and were retried) during bring-up, then clean them up:
        the first scenario's audit must judge only what that scenario caused."""
        failures = cluster.state().failures
        for f in failures:
            self.log(f"bring-up: {f.resource} {f.op} on {f.node} failed (rc={f.exitcode} {f.exitreason}); "
                     "Pacemaker retried it")
        if failures:
            cluster.cleanup()
            cluster.wait_settled(timeout=300 * self.backend.wait_factor)

    def reattach_openstack(self, cluster: Cluster) -> None:
        """For a kept cluster: the control plane's credentials, read back from a node."""
        import json
        from .openstack import SECRETS_PATH, ControlPlane
        node = cluster.any_online_node()
        pw = json.loads(self.backend.exec(node, ["cat", SECRETS_PATH]).out)
        self.control_plane = ControlPlane(self.backend, cluster, log=self.log, pw=pw)

    def start_resources(self, node: str, ids) -> None:
        """Drop the target-role=Stopped the CIB was loaded with."""
        for rid in ids:
            self.backend.exec(node, f"crm_resource --resource {rid} --meta --delete-parameter target-role")

    def load_cib(self, cluster: Cluster, stopped=()) -> None:
        node = cluster.any_online_node()
        fence = self.backend.fence_device() if self.topology.fencing else None
        self.backend.copy(node, render_cib(self.topology, stopped, fence).encode(), "/root/harness-cib.crm")
        self.backend.exec(node, "crm configure load update /root/harness-cib.crm", timeout=120)
