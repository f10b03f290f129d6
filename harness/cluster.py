"""The running cluster as Pacemaker sees it: state from crm_mon/cibadmin XML,
waits, VIP location, and the post-scenario audit (after Pacemaker's CTS)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from .crmxml import ClusterState, parse_cib_version, parse_crm_mon


def parse_link_status(text: str) -> list[tuple[str, str]]:
    """(nodeid, status) of each peer in `corosync-cfgtool -s` (knet: connected, disconnected,
    localhost for the node itself); nothing for other transports."""
    return re.findall(r"^\s*nodeid:?\s+(\d+):\s+(\w+)", text, re.M)


class ClusterError(RuntimeError):
    pass


class NotSettled(ClusterError):
    pass


def poll(check, timeout: float, interval: float = 0.5, what: str = "condition"):
    """Call check() until it returns a truthy value; raise NotSettled with the last reason."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            ok, last = check()
        except ClusterError as e:
            ok, last = False, str(e)
        if ok:
            return last
        if time.monotonic() >= deadline:
            raise NotSettled(f"{what} not reached within {timeout:.0f}s: {last}")
        time.sleep(interval)


@dataclass
class AuditReport:
    problems: list = field(default_factory=list)
    explained_failures: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Votequorum:
    """One node's votequorum view (`corosync-quorumtool -s`)."""
    quorate: bool
    expected_votes: int
    total_votes: int
    qdevice_vote: bool        # the quorum device's vote counts in this node's partition
    members: int = 0          # nodes in this node's membership (the device's row not counted)


def parse_quorumtool(text: str) -> Votequorum:
    """corosync-quorumtool -s (it has no XML output); raises ClusterError on other text."""
    fields = dict(re.findall(r"^([A-Z][\w ]+?):\s+(.*?)\s*$", text, re.M))
    try:
        quorate, expected, total = fields["Quorate"], int(fields["Expected votes"]), int(fields["Total votes"])
    except (KeyError, ValueError):
        raise ClusterError(f"not corosync-quorumtool output: {text.strip()[:120]!r}") from None
    # membership rows "Nodeid Votes [Qdevice-flags] Name" (the device's own row has nodeid 0):
    # the device's vote counts when the total exceeds what the member nodes bring
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+\S.*$", text.split("Membership information", 1)[-1], re.M)
    nodes = [int(votes) for nodeid, votes in rows if nodeid != "0"]
    qdevice = total > sum(nodes)
    return Votequorum(quorate == "Yes", expected, total, qdevice, len(nodes))


class Cluster:
    def __init__(self, backend):
        self.backend = backend
        # nodes the harness itself took down; the audit expects them offline
        self.expected_down: set[str] = set()

    @property
    def topology(self):
        return self.backend.topology

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.topology.nodes]

    # ------------------------------------------------------------ reading state
    def running_nodes(self) -> list[str]:
        return [n for n in self.node_names if self.backend.is_running(n)]

    def links_down(self, grace_s: float = 15) -> list[str]:
        """Corosync links to running peers that stay down for `grace_s` (knet's own view,
        `corosync-cfgtool -s`): a split below the cluster stack, which no cleanup or stack
        restart repairs, so waiting for the membership is pointless (seen: 60 s per step)."""
        deadline = time.monotonic() + grace_s
        while True:
            running = self.running_nodes()
            # nodeids follow the topology's node order (templates/corosync.conf.j2)
            ids = {str(i): n.name for i, n in enumerate(self.topology.nodes, 1) if n.name in running}
            down = []
            for node in running:
                r = self.backend.exec(node, ["corosync-cfgtool", "-s"], timeout=15, check=False)
                down += [f"{node}: corosync link to nodeid {nid} ({ids[nid]}) {status}"
                         for nid, status in parse_link_status(r.out) if status == "disconnected" and nid in ids]
            if not down or time.monotonic() >= deadline:
                return down
            time.sleep(1)

    def view(self, node: str | None = None) -> tuple[str, ClusterState]:
        """(node, crm_mon's view from it): the given node, or the first running one that answers."""
        last = "no node is running"
        for n in [node] if node else self.running_nodes():
            r = self.backend.exec(n, "crm_mon -1 --output-as=xml --include=all", timeout=20, check=False)
            if r.ok:
                return n, parse_crm_mon(r.out)
            last = f"crm_mon on {n} failed: {(r.err or r.out).strip()[:200]}"
        raise ClusterError(last)

    def wait_fencing_settled(self, node: str, timeout: float) -> None:
        """Until no other node's view has `node` unclean or a fencing of it pending. A view
        without quorum cannot fence (seen: a 2-node survivor that had just booted and never saw
        its peer, wait_for_all): booting the node is then what lets it recover. A node already
        fenced reads clean while a second fencing of it is queued (seen on TCG VMs: the
        cluster's own `off` behind an operator's slow reboot powered the booting node off)."""
        def check():
            for other in (n for n in self.running_nodes() if n != node):
                try:
                    view = self.state(node=other)
                except ClusterError:
                    continue
                seen = view.nodes.get(node)
                if seen is not None and seen.unclean and view.quorum:
                    return False, f"{other} still fences {node} (unclean)"
                if queued := [a for a, target in view.pending_fencing if target == node]:
                    return False, f"{other}'s fencer still carries out {', '.join(queued)} of {node}"
            return True, None
        poll(check, timeout, what=f"fencing of {node} done")

    def any_online_node(self) -> str:
        return self.view()[0]

    def state(self, node: str | None = None) -> ClusterState:
        """crm_mon's view from one node (any answering node by default)."""
        return self.view(node)[1]

    def state_if_running(self, node: str) -> ClusterState | None:
        """The node's own view; None when it is powered off (fenced, or killed)."""
        return self.state(node=node) if self.backend.is_running(node) else None

    def votequorum(self, node: str) -> Votequorum:
        r = self.backend.exec(node, ["corosync-quorumtool", "-s"], timeout=15, check=False)
        return parse_quorumtool(r.out)

    def wait_qdevice_votes(self, timeout: float, nodes=None) -> None:
        """Until every node given (default: every online node) counts the quorum device's vote."""
        def check():
            names = nodes() if callable(nodes) else self.state().online
            missing = sorted(n for n in names if not self.votequorum(n).qdevice_vote)
            return not missing, f"no quorum device vote on {missing}"
        poll(check, timeout, interval=1, what="the quorum device's vote on every node")

    def holds(self, node: str, ip: str) -> bool:
        """The node really carries the address (from `ip addr`), whatever Pacemaker believes."""
        r = self.backend.exec(node, ["ip", "-o", "-4", "addr", "show"], timeout=10, check=False)
        return r.ok and re.search(rf"\binet {re.escape(ip)}/", r.out) is not None

    def vip_holders(self, ip: str) -> list[str]:
        return [node for node in self.running_nodes() if self.holds(node, ip)]

    def vip_holder(self, vip: str = "public") -> str | None:
        """The single node holding the VIP, checked against Pacemaker's placement."""
        ip = self.topology.vip(vip).ip
        holders = self.vip_holders(ip)
        if len(holders) > 1:
            raise ClusterError(f"VIP {vip} ({ip}) is on several nodes at once: {holders}")
        rid = self.vip_resource(vip)
        if rid and holders:
            placed = self.state().where(rid)
            if placed != holders:
                raise ClusterError(f"VIP {vip}: Pacemaker places {rid} on {placed}, `ip addr` shows {holders}")
        return holders[0] if holders else None

    def vip_resource(self, vip: str) -> str | None:
        ip = self.topology.vip(vip).ip
        for p in self.topology.resources.primitives:
            if p.agent.endswith(":IPaddr2") and self.topology.expand(p.params.get("ip", "")) == ip:
                return p.id
        return None

    def cib_versions(self) -> dict:
        versions = {}
        for node in self.state().online:
            r = self.backend.exec(node, "cibadmin --query --local", timeout=20, check=False)
            if r.ok:
                versions[node] = parse_cib_version(r.out)
        return versions

    # ------------------------------------------------------------ waiting
    def expected_online(self) -> list[str]:
        return sorted(set(self.node_names) - self.expected_down)

    def _not_formed(self, s: ClusterState) -> str | None:
        missing = set(self.expected_online()) - set(s.online)
        if missing or not s.dc or not s.quorum:
            return f"online={s.online} dc={s.dc} quorum={s.quorum}"
        return None

    def wait_formed(self, timeout: float = 180) -> ClusterState:
        """Every expected node online, a DC elected, quorum held."""
        def check():
            s = self.state()
            problem = self._not_formed(s)
            return (False, problem) if problem else (True, s)
        return poll(check, timeout, what="cluster formed")

    def wait_settled(self, timeout: float = 120) -> ClusterState:
        """Formed, no transition pending (crm_resource --wait), every resource started."""
        def check():
            node, s = self.view()
            problem = self._not_formed(s)
            if problem:
                return False, problem
            r = self.backend.exec(node, "crm_resource --wait --timeout=20s", timeout=30, check=False)
            if not r.ok:
                return False, f"transition pending ({(r.err or r.out).strip()[:120]})"
            s = self.state(node)
            if s.stopped():
                return False, f"resources not running: {s.stopped()}"
            return True, s
        return poll(check, timeout, interval=1, what="cluster settled")

    # ------------------------------------------------------------ acting
    def cleanup(self) -> None:
        """Forget failed actions and fail counts (after a scenario that caused them)."""
        self.backend.exec(self.any_online_node(), "crm_resource --cleanup", timeout=60)

    # ------------------------------------------------------------ audit
    def audit(self, explain=(), explain_if=None) -> AuditReport:
        """CTS-style audit. `explain` lists resource ids whose failed actions a scenario caused;
        `explain_if(failure)` explains others (the host's, when it is below capacity)."""
        report = AuditReport()
        s = self.state()
        missing = set(self.expected_online()) - set(s.online)
        if missing:
            report.problems.append(f"nodes offline: {sorted(missing)}")
        unclean = [n.name for n in s.nodes.values() if n.unclean]
        if unclean:
            report.problems.append(f"nodes unclean: {unclean}")
        for f in s.failures:
            if f.resource in explain or (explain_if is not None and explain_if(f)):
                report.explained_failures.append(f)
            else:
                report.problems.append(f"unexplained failed action: {f.resource} {f.op} on {f.node} "
                                       f"rc={f.exitcode} {f.exitreason}".strip())
        if s.active_twice():
            report.problems.append(f"resources active on several nodes: {s.active_twice()}")
        digests = {n: v.config_digest for n, v in self.cib_versions().items()}
        if len(set(digests.values())) > 1:
            report.problems.append(f"CIB configuration differs between nodes: {digests}")
        for vip in self.topology.vips:
            holders = self.vip_holders(vip.ip)
            if len(holders) != 1:
                report.problems.append(f"VIP {vip.name} held by {holders or 'no node'}")
        return report
