"""Return to a known-good cluster after a scenario that left it damaged.

As Pacemaker's CTS restarts a cluster a test left unhealthy, the reset tries steps of
increasing force and stops at the first after which the cluster is settled, audited
and free of fault leftovers:

  1. clear leftovers + cleanup: thaw/boot/replug nodes, drop tagged rules, forget failures
  2. restart corosync and pacemaker on the nodes that did not rejoin
  3. restart every node (a power cycle, then the cluster stack)
  4. re-provision: new nodes from the image, the cluster (and OpenStack) set up again

Each step is recorded in the damaging scenario's history; the reset's outcome goes to
the report and the terminal summary.
"""
from __future__ import annotations

import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from . import healcheck
from .topology import QNETD


@dataclass
class ResetRecord:
    after: str                 # test id of the scenario that left the damage
    reason: str
    steps: list = field(default_factory=list)     # "name: ok|<problem> (N s)"
    took_s: float = 0.0
    ok: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        how = self.steps[-1].split(":", 1)[0] if self.steps else "nothing"
        verdict = f"healthy after {how}" if self.ok else "FAILED, the remaining scenarios are not run"
        return f"cluster reset after {self.after}: {self.reason}; {verdict}, took {self.took_s:.0f} s"


def clear_node(nic: str) -> str:
    """One exec per node that undoes anything a fault can leave inside it (`nic`: the node's
    interface on the cluster network, where network faults put their qdisc)."""
    return (f"iptables -S | grep -- '{healcheck.TAG}' | sed 's/^-A/-D/' | "
            "while read -r rule; do eval iptables $rule; done; "
            f"tc qdisc del dev {shlex.quote(nic)} root 2>/dev/null; "
            "ps -eo pid=,stat= | awk '$2 ~ /^T/ {print $1}' | xargs -r kill -CONT; "
            "systemctl is-active corosync pacemaker; true")


class ClusterReset:
    def __init__(self, run, log=print, settle_s: float | None = None, clients=None):
        self.run = run
        self.log = log
        self.clients = clients or (lambda: [])     # problems of the clients (they must answer again)
        self.settle_s = settle_s or (300 if run.topology.openstack else 90) * run.backend.wait_factor

    @property
    def cluster(self):
        return self.run.cluster

    @property
    def backend(self):
        return self.run.backend

    def health(self) -> list[str]:
        """Why the cluster is not known-good yet (empty: it is)."""
        if down := self.cluster.links_down():
            return down
        try:
            self.cluster.wait_formed(timeout=60)
            self.cluster.wait_settled(timeout=self.settle_s)
        except Exception as e:
            return [f"{type(e).__name__}: {e}"]
        problems = healcheck.leftovers(self.cluster) + self.cluster.audit().problems
        return problems or self.clients()

    def __call__(self, after: str, reason: str, history=None) -> ResetRecord:
        record = ResetRecord(after, reason)
        started = time.monotonic()
        self.log(f"cluster reset after {after}: {reason}")
        below_stack = False
        for name, step in (("cleanup", self.clear_and_cleanup), ("restart cluster stack", self.restart_stack),
                           ("restart nodes", self.restart_nodes), ("re-provision", self.reprovision)):
            if below_stack and name == "restart cluster stack":
                record.steps.append(f"{name}: skipped (corosync links down: a stack restart cannot help)")
                self.log(f"  reset step {name}: skipped (corosync links down: a stack restart cannot help)")
                continue
            t = time.monotonic()
            try:
                step()
                problems = self.health()
            except Exception as e:
                problems = [f"{type(e).__name__}: {e}"]
            took = time.monotonic() - t
            below_stack = any("corosync link to nodeid" in p for p in problems)
            outcome = "ok" if not problems else "; ".join(problems)[:300]
            record.steps.append(f"{name}: {outcome} ({took:.0f} s)")
            self.log(f"  reset step {name}: {outcome} ({took:.0f} s)")
            if history is not None:
                history.record("reset", step=name, ok=not problems, problems=problems, took_s=round(took, 1))
            if not problems:
                record.ok = True
                break
        record.took_s = round(time.monotonic() - started, 1)
        return record

    # ------------------------------------------------------------ the steps
    def clear_and_cleanup(self) -> None:
        self.cluster.expected_down.clear()
        if self.run.topology.corosync.qdevice is not None and self.backend.power_state(QNETD) != "running":
            self.backend.start(QNETD)
            self.run.provisioner.start_qnetd()
        for node in self.cluster.node_names:
            state = self.backend.power_state(node)
            if state == "paused":
                self.backend.unpause(node)
            elif state == "stopped":
                self.backend.start(node)
            if not self.backend.is_plugged(node):
                self.backend.reconnect(node)
            self.run.provisioner.wait_booted(node)
            # the clearing ends with the stack's state: one exec per node
            cleared = self.backend.exec(node, clear_node(self.backend.cluster_nic), timeout=60, check=False)
            if cleared.out.split()[-2:] != ["active", "active"]:
                self.run.provisioner.start_stack(node)
        node = self.cluster.any_online_node()
        self._clear_cib(node)
        self.backend.exec(node, "crm_resource --cleanup", timeout=120, check=False)

    def _clear_cib(self, node: str) -> None:
        """Standby attributes and cli-* move/ban constraints left by faults."""
        cmds = [f"crm_attribute --node {n} --name standby --delete --lifetime forever"
                for n in self.cluster.node_names]
        cmds += [f"cibadmin --delete --xpath \"//*[@id='{cid}']\"" for cid in healcheck.move_constraints(self.cluster, node)]
        self.backend.exec(node, "; ".join(cmds), timeout=60, check=False)

    def restart_stack(self) -> None:
        """Restart corosync and pacemaker where the node is not a member (all nodes if
        every node is a member but the cluster is still unhealthy)."""
        try:
            online = set(self.cluster.state().online)
        except Exception:
            online = set()
        nodes = [n for n in self.cluster.node_names if n not in online] or self.cluster.node_names
        def stop(node):
            # a pacemaker that cannot reach its peers may hang stopping: kill it then
            self.backend.exec(node, "systemctl stop pacemaker || systemctl kill -s KILL pacemaker; "
                                    "systemctl stop corosync || systemctl kill -s KILL corosync",
                              timeout=150, check=False)
        # together: stopped one by one, each node would first take over the other's resources
        with ThreadPoolExecutor(len(nodes)) as pool:
            list(pool.map(stop, nodes))
        for node in nodes:
            self.run.provisioner.start_stack(node)

    def restart_nodes(self) -> None:
        for node in self.cluster.node_names:
            state = self.backend.power_state(node)
            if state == "paused":
                self.backend.unpause(node)      # a frozen node cannot be killed
            if state != "stopped":
                self.backend.kill(node)
        for node in self.cluster.node_names:
            self.backend.start(node)
        for node in self.cluster.node_names:
            self.run.provisioner.start_stack(node)

    def reprovision(self) -> None:
        self.run.reprovision()
