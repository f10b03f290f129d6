"""Parsers for Pacemaker's XML (crm_mon --output-as=xml, cibadmin): pure functions."""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class NodeState:
    name: str
    online: bool
    standby: bool
    unclean: bool
    maintenance: bool = False
    pending: bool = False       # still joining: Pacemaker flags it standby until it is ready


@dataclass(frozen=True)
class ResourceState:
    id: str
    agent: str
    role: str
    active: bool
    failed: bool
    managed: bool
    nodes: tuple             # where it is active
    parent: str | None = None    # group or clone id
    clone: str | None = None     # enclosing clone id, if any
    target_role: str | None = None


@dataclass(frozen=True)
class FailedAction:
    resource: str
    op: str
    node: str
    exitcode: int
    exitreason: str
    status: str
    when: str


@dataclass
class ClusterState:
    dc: str | None
    quorum: bool
    nodes: dict = field(default_factory=dict)        # name -> NodeState
    resources: dict = field(default_factory=dict)    # id -> [ResourceState] (clone instances share an id)
    failures: list = field(default_factory=list)
    fail_counts: dict = field(default_factory=dict)  # (node, resource) -> int
    pending_fencing: list = field(default_factory=list)  # (action, target) the fencers still carry out

    @property
    def online(self) -> list[str]:
        return sorted(n.name for n in self.nodes.values() if n.online)

    def where(self, rid: str) -> list[str]:
        """Nodes where a primitive (or every instance of a cloned one) is active."""
        return sorted({n for r in self.resources.get(rid, []) for n in r.nodes})

    def active_twice(self) -> list[str]:
        """Non-clone primitives active on more than one node: a CTS audit failure."""
        return sorted(rid for rid, insts in self.resources.items()
                      if not any(i.clone for i in insts) and len(self.where(rid)) > 1)

    def stopped(self) -> list[str]:
        """Resources running nowhere, except those stopped on purpose (target-role=Stopped)."""
        return sorted(rid for rid, insts in self.resources.items()
                      if not any(i.active for i in insts)
                      and not any((i.target_role or "").lower() == "stopped" for i in insts))


def parse_crm_mon(xml_text: str) -> ClusterState:
    # tolerate tool chatter printed before the document
    root = ET.fromstring(xml_text[xml_text.find("<pacemaker-result"):] if "<pacemaker-result" in xml_text else xml_text)
    dc = root.find("summary/current_dc")
    state = ClusterState(
        dc=dc.get("name") if dc is not None and dc.get("present") == "true" else None,
        quorum=dc is not None and dc.get("with_quorum") == "true")
    for n in root.findall("nodes/node"):
        # a joining node is reported standby until its controller is ready: not an operator's standby
        pending = _b(n, "pending")
        state.nodes[n.get("name")] = NodeState(
            n.get("name"), _b(n, "online"), (_b(n, "standby") and not pending) or _b(n, "standby_onfail"),
            _b(n, "unclean"), _b(n, "maintenance"), pending)
    resources = root.find("resources")
    if resources is not None:
        _walk_resources(resources, state, parent=None, clone=None)
    for f in root.findall("failures/failure"):
        state.failures.append(FailedAction(
            resource=f.get("op_key", "").rsplit("_", 2)[0], op=f.get("task", ""), node=f.get("node", ""),
            exitcode=int(f.get("exitcode", "0")), exitreason=f.get("exitreason", ""),
            status=f.get("status", ""), when=f.get("last-rc-change", "")))
    state.pending_fencing = [(e.get("action"), e.get("target")) for e in root.findall("fence_history/fence_event")
                             if e.get("status") == "pending"]
    for n in root.findall("node_history/node"):
        for r in n.findall("resource_history"):
            count = r.get("fail-count")
            if count and count != "0":
                state.fail_counts[(n.get("name"), r.get("id"))] = (
                    1_000_000 if count == "INFINITY" else int(count))
    return state


def _walk_resources(elem, state: ClusterState, parent, clone, target_role=None) -> None:
    for child in elem:
        role = child.get("target_role") or target_role
        if child.tag == "resource":
            rid = child.get("id").split(":")[0]       # anonymous clone instances: "web:0"
            state.resources.setdefault(rid, []).append(ResourceState(
                id=rid, agent=child.get("resource_agent", ""), role=child.get("role", ""),
                active=_b(child, "active"), failed=_b(child, "failed"), managed=_b(child, "managed"),
                nodes=tuple(n.get("name") for n in child.findall("node")), parent=parent, clone=clone,
                target_role=role))
        elif child.tag == "group":
            _walk_resources(child, state, child.get("id").split(":")[0], clone, role)
        elif child.tag in ("clone", "bundle"):
            _walk_resources(child, state, child.get("id"), child.get("id"), role)


def _b(elem, attr: str) -> bool:
    return elem.get(attr) == "true"


# ---------------------------------------------------------------- CIB

@dataclass(frozen=True)
class CibVersion:
    admin_epoch: int
    epoch: int
    num_updates: int
    config_digest: str     # digest of <configuration>: what must match on every node


def parse_cib_version(xml_text: str) -> CibVersion:
    root = ET.fromstring(xml_text)
    config = root.find("configuration")
    canon = ET.canonicalize(ET.tostring(config), strip_text=True) if config is not None else ""
    return CibVersion(int(root.get("admin_epoch", 0)), int(root.get("epoch", 0)),
                      int(root.get("num_updates", 0)), hashlib.sha256(canon.encode()).hexdigest()[:16])


def parse_constraint_ids(xml_text: str) -> list[str]:
    """Ids of every constraint in `cibadmin --query --scope constraints` output."""
    root = ET.fromstring(xml_text)
    return [el.get("id") for el in root.iter() if el.tag.startswith("rsc_") and el.get("id")]


def rc_change_wall(text: str) -> float | None:
    """A failure's last-rc-change ("2026-12-02 06:22:44Z", node clock, UTC) as epoch seconds;
    None when absent or in another format."""
    try:
        return datetime.strptime(text.strip().strip("'"), "%Y-%m-%d %H:%M:%SZ").replace(
            tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
