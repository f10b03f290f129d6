"""After a scenario's faults are healed: nothing of them may remain on any node.

A heal that did not take (a rule left in a table, a node still frozen or unplugged, a
standby or a move constraint left in the CIB) would be inherited by the next scenario
as a failure of its own. The check reads every node once and names what it found.
"""
from __future__ import annotations

import re

from .crmxml import parse_constraint_ids
from .topology import QNETD

TAG = "ha-harness"       # iptables comment on every rule a fault inserts

# one exec per node: what a fault can leave behind inside it
NODE_PROBE = (
    f"echo rules=$(iptables -S 2>/dev/null | grep -c -- '{TAG}'); "
    "echo netem=$(tc qdisc show 2>/dev/null | grep -c netem); "
    "echo stack=$(systemctl is-active corosync pacemaker | tr '\\n' ,); "
    "echo stopped=$(ps -eo stat=,comm= | awk '$1 ~ /^T/ {print $2}' | sort -u | tr '\\n' ,)"
)


def parse_node_probe(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def node_problems(values: dict[str, str]) -> list[str]:
    """What the probe's answer says is left over (pure: unit-tested)."""
    problems = []
    if values.get("rules", "0") != "0":
        problems.append(f"{values['rules']} harness iptables rule(s) left")
    if values.get("netem", "0") != "0":
        problems.append("a netem qdisc left")
    stack = [s for s in values.get("stack", "").split(",") if s]
    if stack != ["active", "active"]:
        problems.append(f"corosync/pacemaker not active ({','.join(stack) or 'unknown'})")
    stopped = [p for p in values.get("stopped", "").split(",") if p]
    if stopped:
        problems.append(f"stopped (SIGSTOP) processes: {', '.join(stopped)}")
    return problems


def leftovers(cluster) -> list[str]:
    """Every leftover of a fault on the cluster, one line each; empty when all healed."""
    backend = cluster.backend
    # a node a fault took down and no heal brought back: every later settle would ignore it
    problems = [f"{node}: still expected down" for node in sorted(cluster.expected_down)]
    for node in cluster.node_names:
        power = backend.power_state(node)
        if power != "running":
            problems.append(f"{node}: node is {power}")
            continue
        if not backend.is_plugged(node):
            problems.append(f"{node}: unplugged from the cluster network")
        r = backend.exec(node, NODE_PROBE, timeout=30, check=False)
        if not r.ok:
            problems.append(f"{node}: not readable ({(r.err or r.out).strip()[:120]})")
            continue
        problems += [f"{node}: {p}" for p in node_problems(parse_node_probe(r.out))]
    if cluster.topology.corosync.qdevice is not None and backend.power_state(QNETD) != "running":
        problems.append(f"{QNETD}: the quorum device's arbiter is {backend.power_state(QNETD)}")
    problems += cib_leftovers(cluster)
    return problems


def move_constraints(cluster, node: str) -> list[str]:
    """Ids of the constraints `crm_resource --move/--ban` leaves (cli-*), read on `node`."""
    r = cluster.backend.exec(node, "cibadmin --query --scope constraints", timeout=30, check=False)
    return [cid for cid in parse_constraint_ids(r.out) if re.match(r"cli-(ban|prefer)-", cid)] if r.ok else []


def cib_leftovers(cluster) -> list[str]:
    """Standby nodes and move/ban constraints left in the CIB."""
    try:
        node, state = cluster.view()        # one crm_mon: the answering node and its view
    except Exception as e:          # no node answers: the settle/audit reports that
        return [f"CIB not readable: {e}"]
    problems = [f"{n.name}: left in standby" for n in state.nodes.values() if n.standby]
    return problems + [f"constraint {cid} left by a move/ban" for cid in move_constraints(cluster, node)]
