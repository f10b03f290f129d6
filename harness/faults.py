"""Faults (the nemesis): each is a context manager that records its window in the
history and whose heal runs whatever happens. The Nemesis also heals every
fault still active when a scenario ends, so a forgotten `with` cannot leak one.

    with nemesis.node("node1").kill(): ...
    with nemesis.isolate("node2"): ...
    with nemesis.service("node1", "harness-web").sigkill(): ...
"""
from __future__ import annotations

import itertools
import shlex
import signal
import threading
import time

from . import healcheck
from .topology import QNETD

_ids = itertools.count(1)


class FaultError(RuntimeError):
    pass


class Fault:
    name = "fault"

    def __init__(self, nemesis, target: str, **detail):
        self.nemesis = nemesis
        self.target = target
        self.detail = detail
        self.id = f"{self.name}-{next(_ids)}"
        self.active = False
        self.started_at: float | None = None        # requested
        self.applied_at: float | None = None        # the action returned
        self.heal_requested_at: float | None = None
        self.healed_at: float | None = None         # the heal returned
        self.outcome: dict = {}                     # what _apply learnt, recorded with "applied"

    # subclasses implement these two
    def _apply(self) -> None:
        raise NotImplementedError

    def _heal(self) -> None:
        pass

    @property
    def backend(self):
        return self.nemesis.cluster.backend

    def apply(self) -> "Fault":
        self.nemesis._active.append(self)
        self.active = True
        ev = self.nemesis.history.record("fault", id=self.id, fault=self.name, phase="start",
                                         target=self.target, **self.detail)
        self.started_at = ev["t"]
        try:
            self._apply()
        except BaseException:
            self.heal()
            raise
        # The action took effect somewhere between start and applied: a checker
        # comparing against ground truth uses both bounds.
        self.applied_at = self.nemesis.history.record("fault", id=self.id, fault=self.name,
                                                      phase="applied", target=self.target, **self.outcome)["t"]
        return self

    def heal(self) -> None:
        if not self.active:
            return
        self.active = False
        self.heal_requested_at = self.nemesis.history.record(
            "fault", id=self.id, fault=self.name, phase="heal", target=self.target)["t"]
        try:
            self._heal()
        finally:
            ev = self.nemesis.history.record("fault", id=self.id, fault=self.name, phase="end",
                                             target=self.target)
            self.healed_at = ev["t"]
            if self in self.nemesis._active:
                self.nemesis._active.remove(self)

    def __enter__(self):
        return self if self.active else self.apply()

    def __exit__(self, *exc):
        self.heal()


# ---------------------------------------------------------------- node faults (through the backend)

class NodeKill(Fault):
    """Power cut. Heal boots the node and starts its cluster stack so it rejoins."""
    name = "node-kill"

    def _apply(self):
        self.backend.kill(self.target)
        self.nemesis.cluster.expected_down.add(self.target)

    def _heal(self):
        self.nemesis.restore_node(self.target)


class NodeShutdown(NodeKill):
    """A clean power-off. It may take as long as the hand-over: a DC that shuts down keeps
    running the transition that starts its resources elsewhere (os-ap-3node: ~135 s) before
    Pacemaker exits. The 60 s it had killed that node mid-transition (an election, and a start
    run twice on the survivor); past TIMEOUT_S the kill is recorded (`forced_after_s`)."""
    name = "node-shutdown"
    TIMEOUT_S = 300

    def _apply(self):
        if not self.backend.shutdown(self.target, timeout=self.TIMEOUT_S):
            self.outcome["forced_after_s"] = self.TIMEOUT_S
            print(f"{self.target}: not down {self.TIMEOUT_S} s after the shutdown began: killed")
        self.nemesis.cluster.expected_down.add(self.target)


class NodeReboot(Fault):
    """Kill then boot at once: the node comes back while the cluster reacts."""
    name = "node-reboot"

    def _apply(self):
        self.backend.kill(self.target)
        self.nemesis.restore_node(self.target)

    def _heal(self):
        self.nemesis.restore_node(self.target)


class FenceRequest(Fault):
    """An operator fences a node on purpose (`stonith_admin --reboot` from another node);
    heal starts its cluster stack (a fenced node never starts it by itself)."""
    name = "fence-request"

    def _apply(self):
        other = next(n for n in self.nemesis.cluster.running_nodes() if n != self.target)
        self.nemesis.cluster.expected_down.add(self.target)
        self.backend.exec(other, ["stonith_admin", "--reboot", self.target, "--timeout", "90"], timeout=120)

    def _heal(self):
        self.nemesis.restore_node(self.target)


class NodeFreeze(Fault):
    """Freeze every process of the node: it stops answering but is not dead."""
    name = "node-freeze"

    def _apply(self):
        self.backend.pause(self.target)

    def _heal(self):
        self.nemesis.restore_node(self.target)     # thawed, or booted if it was fenced off


class NodeStandby(Fault):
    name = "node-standby"

    def _apply(self):
        self.nemesis.crm(f"crm_attribute --node {self.target} --name standby --update on --lifetime forever")

    def _heal(self):
        self.nemesis.crm(f"crm_attribute --node {self.target} --name standby --delete --lifetime forever")


class Unplug(Fault):
    """Unplug the node's network interface from outside (backend-level)."""
    name = "node-unplug"

    def _apply(self):
        self.backend.disconnect(self.target)

    def _heal(self):
        self.backend.reconnect(self.target)


# ---------------------------------------------------------------- network faults (iptables in nodes)

class IptablesFault(Fault):
    """Insert iptables rules in nodes; heal deletes exactly those rules."""

    def rules(self) -> dict[str, list[list[str]]]:
        """{node: [rule spec without -I/-D chain]}"""
        raise NotImplementedError

    def _apply(self):
        # tagged: the heal check (and a reset) find any rule of ours that outlived its fault
        tag = ["-m", "comment", "--comment", f"{healcheck.TAG}:{self.id}"]
        self._rules = {node: [[*s, *tag] for s in specs] for node, specs in self.rules().items()}
        for node, specs in self._rules.items():
            self.nemesis.exec(node, " && ".join(f"iptables -I {shlex.join(s)}" for s in specs))

    def _heal(self):
        failed = []
        for node, specs in getattr(self, "_rules", {}).items():
            if not self.backend.is_running(node):
                continue        # a killed node boots with empty tables
            for spec in specs:
                r = self.nemesis.exec(node, ["iptables", "-D", *spec], check=False)
                if not r.ok:
                    failed.append(f"{node}: iptables -D {shlex.join(spec)}: {r.err.strip()[:120]}")
        if failed:
            raise FaultError("heal did not take: " + "; ".join(failed))


def _drop_between(peer_ips, extra=()) -> list[list[str]]:
    specs = []
    for peer in peer_ips:
        specs.append(["INPUT", "-s", peer, *extra, "-j", "DROP"])
        specs.append(["OUTPUT", "-d", peer, *extra, "-j", "DROP"])
    return specs


class Partition(IptablesFault):
    """Cut the cluster network between groups of nodes (both directions).

    The host (clients) can still reach every node: only node-to-node traffic drops.
    """
    name = "partition"

    def __init__(self, nemesis, groups, only_corosync: bool = False, cut_from_arbiter=()):
        self.groups = [list(g) for g in groups]
        self.only_corosync = only_corosync
        self.cut_from_arbiter = list(cut_from_arbiter)     # nodes that lose the quorum device too
        super().__init__(nemesis, " | ".join(",".join(g) for g in self.groups), groups=self.groups,
                         only_corosync=only_corosync, **({"cut_from_arbiter": self.cut_from_arbiter}
                                                         if self.cut_from_arbiter else {}))

    def rules(self):
        topo = self.nemesis.cluster.topology
        extra = ("-p", "udp", "--dport", "5405") if self.only_corosync else ()
        rules = {}
        for group in self.groups:
            others = [topo.node(n).ip for g in self.groups if g is not group for n in g]
            for node in group:
                # knet sends from and to port 5405, so --dport matches both directions
                rules[node] = _drop_between(others, extra)
                if node in self.cut_from_arbiter:
                    rules[node] += _drop_between([topo.corosync.qdevice.ip])
        return rules


class PortBlock(IptablesFault):
    """Drop incoming TCP to a port on a node: the service is alive but unreachable.

    Used as ground truth: the probes must measure exactly the blocked time.
    """
    name = "port-block"

    def __init__(self, nemesis, node: str, port: int):
        self.port = port
        super().__init__(nemesis, node, port=port)

    def rules(self):
        # clients only: loopback stays open, or the resource's own monitor would see the
        # block and Pacemaker would restart the service (no longer a known, pure outage)
        return {self.target: [["INPUT", "!", "-i", "lo", "-p", "tcp", "--dport", str(self.port), "-j", "DROP"]]}


class PacketLoss(IptablesFault):
    """Random loss on the node's cluster traffic (iptables statistic: works without netem)."""
    name = "packet-loss"

    def __init__(self, nemesis, node: str, loss: float):
        if not 0 < loss < 1:
            raise FaultError(f"packet loss must be between 0 and 1, got {loss}")
        self.loss = loss
        super().__init__(nemesis, node, loss=loss)

    def rules(self):
        topo = self.nemesis.cluster.topology
        peers = [n.ip for n in topo.nodes if n.name != self.target]
        stat = ("-m", "statistic", "--mode", "random", "--probability", str(self.loss))
        return {self.target: _drop_between(peers, stat)}


class Netem(Fault):
    """Latency/jitter/loss with tc netem on the node's interface."""
    name = "netem"

    def __init__(self, nemesis, node: str, delay_ms: int = 0, jitter_ms: int = 0, loss_pct: float = 0):
        self.args = ["delay", f"{delay_ms}ms", f"{jitter_ms}ms"] + (["loss", f"{loss_pct}%"] if loss_pct else [])
        super().__init__(nemesis, node, delay_ms=delay_ms, jitter_ms=jitter_ms, loss_pct=loss_pct)

    def _apply(self):
        r = self.nemesis.exec(self.target, ["tc", "qdisc", "add", "dev", self._nic, "root", "netem", *self.args],
                              check=False)
        if not r.ok:
            raise FaultError(f"tc netem unavailable on this kernel: {r.err.strip()}")

    def _heal(self):
        self.nemesis.exec(self.target, f"tc qdisc del dev {self._nic} root", check=False)

    @property
    def _nic(self) -> str:
        return self.nemesis.cluster.backend.cluster_nic


class Flap(Fault):
    """Isolate a node for `down_s`, reconnect for `up_s`, `times` times (in a thread)."""
    name = "link-flap"

    def __init__(self, nemesis, node: str, down_s: float, up_s: float, times: int):
        super().__init__(nemesis, node, down_s=down_s, up_s=up_s, times=times)
        self._stop = threading.Event()

    def _apply(self):
        peers = [[n.name for n in self.nemesis.cluster.topology.nodes if n.name != self.target]]

        def run():
            for _ in range(self.detail["times"]):
                with Partition(self.nemesis, [[self.target], *peers]):
                    if self._stop.wait(self.detail["down_s"]):
                        return
                if self._stop.wait(self.detail["up_s"]):
                    return
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait(self):
        self._thread.join()

    def _heal(self):
        self._stop.set()
        self._thread.join(timeout=60)


# ---------------------------------------------------------------- daemon faults (inside a node)

class ServiceStop(Fault):
    name = "service-stop"

    def __init__(self, nemesis, node: str, unit: str):
        super().__init__(nemesis, node, unit=unit)

    def _apply(self):
        self.nemesis.exec(self.target, ["systemctl", "stop", self.detail["unit"]])

    def _heal(self):
        self.nemesis.ensure_stack(self.target, self.detail["unit"])


class ServiceSignal(Fault):
    """Send a signal to a unit's main process (SIGKILL: crash; SIGSTOP: hang, healed by SIGCONT)."""
    name = "service-signal"

    def __init__(self, nemesis, node: str, unit: str, sig: int):
        super().__init__(nemesis, node, unit=unit, signal=signal.Signals(sig).name)
        self.sig = sig

    def _apply(self):
        unit = self.detail["unit"]
        pid = self.nemesis.exec(self.target, ["systemctl", "show", "-p", "MainPID", "--value", unit]).out.strip()
        if pid in ("", "0"):
            raise FaultError(f"{self.target}: {unit} has no main process to signal")
        self.detail["pid"] = int(pid)
        self.nemesis.exec(self.target, ["kill", f"-{self.sig}", pid])

    def restarted_by_systemd(self) -> bool:
        """The unit is active again with a new main process that systemd's Restart= started
        (Debian's OpenStack units have Restart=on-failure: a SIGKILL may never reach Pacemaker)."""
        r = self.nemesis.exec(self.target, ["systemctl", "show", "-p", "ActiveState,MainPID,NRestarts",
                                            self.detail["unit"]], check=False)
        props = dict(line.split("=", 1) for line in r.out.split() if "=" in line)
        return (props.get("ActiveState") == "active"
                and props.get("MainPID") not in (None, "0", str(self.detail["pid"]))
                and int(props.get("NRestarts") or 0) > 0)

    def _heal(self):
        if self.sig == signal.SIGSTOP:
            self.nemesis.exec(self.target, ["kill", "-CONT", str(self.detail["pid"])], check=False)
        self.nemesis.ensure_stack(self.target, self.detail["unit"])


class ServiceHang(Fault):
    """SIGSTOP every process of a unit (master and workers): the PIDs live, the service answers
    nothing; a monitor that only asks whether the process exists calls it healthy. Heal: SIGCONT."""
    name = "service-hang"

    def __init__(self, nemesis, node: str, unit: str):
        super().__init__(nemesis, node, unit=unit)

    def _apply(self):
        self.nemesis.exec(self.target, ["systemctl", "kill", "--signal=SIGSTOP", self.detail["unit"]])

    def _heal(self):
        self.nemesis.exec(self.target, ["systemctl", "kill", "--signal=SIGCONT", self.detail["unit"]], check=False)
        self.nemesis.ensure_stack(self.target, self.detail["unit"])


# ---------------------------------------------------------------- resource faults

class ResourceFail(Fault):
    """Make Pacemaker record a failed monitor (crm_resource --fail); heal cleans it up."""
    name = "resource-fail"

    def __init__(self, nemesis, rid: str, node: str):
        super().__init__(nemesis, node, resource=rid)

    def _apply(self):
        self.nemesis.crm(f"crm_resource --fail --resource {self.detail['resource']} --node {self.target}")

    def _heal(self):
        self.nemesis.crm(f"crm_resource --cleanup --resource {self.detail['resource']}")


class ResourceMove(Fault):
    """Move (ban elsewhere) a resource to a node; heal clears the constraint it leaves."""
    name = "resource-move"

    def __init__(self, nemesis, rid: str, node: str, ban: bool = False):
        self.ban = ban
        super().__init__(nemesis, node, resource=rid, ban=ban)

    def _apply(self):
        verb = "--ban" if self.ban else "--move"
        self.nemesis.crm(f"crm_resource {verb} --resource {self.detail['resource']} --node {self.target}")

    def _heal(self):
        self.nemesis.crm(f"crm_resource --clear --resource {self.detail['resource']}")


class FenceDeviceFailure(Fault):
    """The fence device fails every request while the fault lasts (the power switch is dead)."""
    name = "fence-device-failure"

    def __init__(self, nemesis):
        super().__init__(nemesis, "fence-device")

    def _apply(self):
        self.backend.fence_device_broken(True)

    def _heal(self):
        self.backend.fence_device_broken(False)


class QuorumDeviceLoss(Fault):
    """The quorum device's arbiter dies (power cut). Heal boots it, starts corosync-qnetd and
    waits until every running node's quorum device client casts its vote again."""
    name = "qnetd-loss"

    def __init__(self, nemesis):
        super().__init__(nemesis, QNETD)

    def _apply(self):
        self.backend.kill(QNETD)

    def _heal(self):
        if self.backend.power_state(QNETD) != "running":
            self.backend.start(QNETD)
        self.nemesis.provisioner.start_qnetd()
        # qdevice reconnects on its own (its connect timeout is a few seconds)
        cluster = self.nemesis.cluster
        cluster.wait_qdevice_votes(90, nodes=cluster.running_nodes)


# ---------------------------------------------------------------- the nemesis

CLUSTER_STACK = ("corosync", "pacemaker")


class NodeFaults:
    """os-faults style: nemesis.node("node1").kill()."""

    def __init__(self, nemesis, node: str):
        self.n, self.node = nemesis, node

    def kill(self): return NodeKill(self.n, self.node).apply()
    def freeze(self): return NodeFreeze(self.n, self.node).apply()
    def shutdown(self): return NodeShutdown(self.n, self.node).apply()
    def reboot(self): return NodeReboot(self.n, self.node).apply()
    def standby(self): return NodeStandby(self.n, self.node).apply()
    def unplug(self): return Unplug(self.n, self.node).apply()
    def fence(self): return FenceRequest(self.n, self.node).apply()
    def isolate(self): return self.n.isolate(self.node)


class ServiceFaults:
    def __init__(self, nemesis, node: str, unit: str):
        self.n, self.node, self.unit = nemesis, node, unit

    def stop(self): return ServiceStop(self.n, self.node, self.unit).apply()
    def sigkill(self): return ServiceSignal(self.n, self.node, self.unit, signal.SIGKILL).apply()
    def hang(self): return ServiceHang(self.n, self.node, self.unit).apply()


class Nemesis:
    def __init__(self, cluster, provisioner, history):
        self.cluster = cluster
        self.provisioner = provisioner
        self.history = history
        self._active: list[Fault] = []
        # called with a node's name before a fault takes it (or its membership) away
        self.before_node_loss: list = []

    # helpers shared by faults
    def exec(self, node, cmd, check=True):
        return self.cluster.backend.exec(node, cmd, timeout=60, check=check)

    def crm(self, cmd: str):
        return self.exec(self.cluster.any_online_node(), cmd)

    def restore_node(self, node: str) -> None:
        """Boot a node if it is down and start its cluster stack; it then rejoins. On a fenced
        cluster first let a pending fencing of it finish: a node booted while the survivors
        still fence it is killed again (seen: a killed node booted 1 s after its loss was
        noticed was powered off by the fencing already under way, and never rejoined)."""
        backend = self.cluster.backend
        fencing = self.cluster.topology.fencing
        if fencing is not None:
            self.cluster.wait_fencing_settled(
                node, timeout=(fencing.timeout + fencing.longest_delay + 30) * backend.wait_factor)
        state = backend.power_state(node)
        if state == "paused":
            backend.unpause(node)
        elif state == "stopped":
            backend.start(node)
        self.provisioner.start_stack(node)
        self.cluster.expected_down.discard(node)

    def ensure_stack(self, node: str, unit: str) -> None:
        # Pacemaker restarts the services it manages; the cluster stack itself needs us.
        # A node fenced meanwhile (stonith-action=off) is booted first.
        if self.cluster.backend.power_state(node) == "stopped":
            self.restore_node(node)
        elif unit in CLUSTER_STACK or unit.startswith("pacemaker"):
            self.provisioner.start_stack(node)

    # the fault API
    def node(self, name: str) -> NodeFaults:
        self.cluster.topology.node(name)        # unknown node: KeyError naming it
        self._losing(name)
        return NodeFaults(self, name)

    def _losing(self, *nodes: str) -> None:
        for node in nodes:
            for hook in self.before_node_loss:
                hook(node)

    def service(self, node: str, unit: str) -> ServiceFaults:
        if unit in CLUSTER_STACK or unit.startswith("pacemaker"):
            self._losing(node)          # the node's membership goes with its cluster stack
        return ServiceFaults(self, node, unit)

    def isolate(self, node: str, only_corosync: bool = False, from_arbiter: bool = False) -> Fault:
        """Cut a node from the others (and, with from_arbiter, from the quorum device too)."""
        others = [n.name for n in self.cluster.topology.nodes if n.name != node]
        if from_arbiter and self.cluster.topology.corosync.qdevice is None:
            raise FaultError(f"topology {self.cluster.topology.name} has no quorum device to cut {node} from")
        self._losing(node)
        return Partition(self, [[node], others], only_corosync, [node] if from_arbiter else ()).apply()

    def partition(self, *groups) -> Fault:
        self._losing(*(n for g in groups for n in g))
        return Partition(self, groups).apply()

    def quorum_device_loss(self) -> Fault:
        if self.cluster.topology.corosync.qdevice is None:
            raise FaultError(f"topology {self.cluster.topology.name} has no quorum device (corosync.qdevice)")
        return QuorumDeviceLoss(self).apply()

    def block_port(self, node: str, port: int) -> Fault:
        return PortBlock(self, node, port).apply()

    # a degraded link may break the membership (seen: 10 % loss on 2 nodes, token 1000 ms)
    def packet_loss(self, node: str, loss: float) -> Fault:
        self._losing(node)
        return PacketLoss(self, node, loss).apply()

    def netem(self, node: str, **kw) -> Fault:
        self._losing(node)
        return Netem(self, node, **kw).apply()

    def flap(self, node: str, down_s: float, up_s: float, times: int) -> Flap:
        self._losing(node)
        return Flap(self, node, down_s, up_s, times).apply()

    def fail_resource(self, rid: str, node: str) -> Fault:
        return ResourceFail(self, rid, node).apply()

    def move_resource(self, rid: str, node: str, ban: bool = False) -> Fault:
        return ResourceMove(self, rid, node, ban).apply()

    def fence_device_failure(self) -> Fault:
        return FenceDeviceFailure(self).apply()

    def heal_all(self) -> list[str]:
        """Heal every active fault, newest first, each even if another's heal failed;
        return their ids, or raise FaultError naming every heal that failed."""
        healed, errors = [], []
        while self._active:
            # a broken fence device first: healing a lost node waits until its fencing is done
            fault = next((f for f in self._active if isinstance(f, FenceDeviceFailure)), self._active[-1])
            try:
                fault.heal()
            except Exception as e:
                errors.append(f"{fault.id}: {type(e).__name__}: {e}")
            finally:
                if fault in self._active:
                    self._active.remove(fault)
            healed.append(fault.id)
        try:
            self.restore_fenced()
            self.wait_rebooted()
        except Exception as e:
            errors.append(f"restoring fenced nodes: {type(e).__name__}: {e}")
        if errors:
            raise FaultError("; ".join(errors))
        return healed

    def restore_fenced(self) -> list[str]:
        """Boot the nodes the cluster fenced off (stonith-action=off) during the faults, as
        an operator would once the cause is gone; returns them."""
        if self.cluster.topology.fencing is None:
            return []
        fenced = [n for n in self.cluster.node_names if self.cluster.backend.power_state(n) == "stopped"]
        for node in fenced:
            self.history.record("note", text=f"{node} was fenced off: booted again with its cluster stack")
            self.restore_node(node)
        return fenced

    def wait_rebooted(self) -> list[str]:
        """Wait for the nodes the fence device rebooted behind the harness's back: powered on
        but not answering yet (a container is back in a second, a TCG VM boots for 1-2 min).
        Judged before, they read as a heal that did not take, and the audit is skipped."""
        backend = self.cluster.backend
        booting = [n for n in self.cluster.node_names if backend.power_state(n) == "running"
                   and not backend.exec(n, "true", timeout=30, check=False).ok]
        for node in booting:
            self.history.record("note", text=f"{node} is booting (rebooted by its fencing): waited for it")
            self.provisioner.wait_booted(node, timeout=backend.boot_timeout)
        return booting

    def wait_settled(self, timeout: float, chunk_s: float = 30):
        """The cluster settled with every node after the heals, booting again a node the
        cluster fenced off after its own heal had booted it: its fencing had waited for a
        quorum that came back only later (ha-3node schedule: node3 frozen and fenced, then
        node1 killed: node2 alone had no quorum, node1's heal booted it, node3 rejoined and
        node1 was fenced off 7 s after its heal, and never came back)."""
        from .cluster import NotSettled
        deadline = time.monotonic() + timeout
        while True:
            self.restore_fenced()
            try:
                return self.cluster.wait_settled(timeout=max(1.0, min(chunk_s, deadline - time.monotonic())))
            except NotSettled:
                if time.monotonic() >= deadline:
                    raise

    def verify_healed(self) -> list[str]:
        """Check every node for leftovers of the faults; the check goes into the history."""
        problems = healcheck.leftovers(self.cluster)
        self.history.record("heal-check", ok=not problems, problems=problems)
        return problems
