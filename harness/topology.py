"""Topologies as code: YAML files loaded into typed, validated objects.

Every validation error is one line naming the file, the key and the problem.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

AGENT_CLASSES = ("ocf", "systemd", "service", "lsb", "stonith")
ORDER_KINDS = ("Mandatory", "Optional", "Serialize")
PLACEHOLDER = re.compile(r"\$\{(vip|node|cluster)\.([A-Za-z0-9_-]+)(?:\.(ip|prefix))?\}")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RSC_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")


class TopologyError(ValueError):
    """A topology file is invalid; str() is the one-line message."""


@dataclass(frozen=True)
class Node:
    name: str
    ip: str


@dataclass(frozen=True)
class Vip:
    name: str
    ip: str


@dataclass(frozen=True)
class QDevice:
    """A quorum device: corosync-qnetd on an arbiter of its own on the run's network (outside
    the cluster), corosync-qdevice on every node; its vote settles a split of the nodes."""
    ip: str
    algorithm: str = "ffsplit"       # ffsplit: the vote goes to one half of an even split; lms


QNETD = "qnetd"                      # the arbiter's name (the backend's host for it)


@dataclass(frozen=True)
class Corosync:
    transport: str = "knet"
    token: int = 1000
    consensus: int | None = None     # corosync's default is 1.2 * token
    two_node: bool = False
    qdevice: QDevice | None = None


@dataclass(frozen=True)
class Fencing:
    """How nodes are fenced: one device of the backend's kind for every node."""
    device: str = "docker"            # docker: fence_docker through the run's fence gate
    delay_max: int = 0                # pcmk_delay_max (s): a random delay settles a 2-node fence race
    priority_delay: int = 0           # priority-fencing-delay (s): the node with more resources wins
    timeout: int = 60                 # stonith-timeout (s)

    @property
    def longest_delay(self) -> int:
        """The longest a fence device waits before it acts (s)."""
        return self.delay_max + self.priority_delay

    def properties(self) -> dict:
        # off, not reboot: a fenced node stays down until the scenario's heal boots it, as a
        # killed node does (a reboot would boot it without its cluster stack)
        props = {"stonith-enabled": "true", "stonith-timeout": f"{self.timeout}s", "stonith-action": "off"}
        if self.priority_delay:
            props["priority-fencing-delay"] = f"{self.priority_delay}s"
        return props


@dataclass(frozen=True)
class Primitive:
    id: str
    agent: str
    params: dict = field(default_factory=dict)
    op: dict = field(default_factory=dict)      # {"monitor": {"interval": "5s", ...}}
    meta: dict = field(default_factory=dict)

    @property
    def agent_class(self) -> str:
        return self.agent.split(":", 1)[0]


@dataclass(frozen=True)
class Group:
    id: str
    members: tuple
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Clone:
    id: str
    rsc: str
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Colocation:
    id: str
    rsc: str
    with_rsc: str
    score: str = "INFINITY"


@dataclass(frozen=True)
class Order:
    id: str
    first: str
    then: str
    kind: str = "Mandatory"


@dataclass(frozen=True)
class HttpCheck:
    name: str
    vip: str
    port: int
    path: str = "/"


@dataclass(frozen=True)
class Frontend:
    """One HAProxy frontend on a VIP; its backends are every node at the same port."""
    name: str
    vip: str
    port: int
    mode: str = "http"          # http: `option httpchk GET <check_path>`; tcp: connect check
    check_path: str = "/"
    one_active: bool = False    # first node serves, the others are backups (a Galera writer)
    check_port: int | None = None   # HTTP health check on another port (Galera's clustercheck)
    check: str | None = None        # this frontend's server check options (default: haproxy.check)


@dataclass(frozen=True)
class Haproxy:
    check: str = "inter 2000 rise 2 fall 5"     # the OpenStack HA guide's backend check
    frontends: tuple = ()

    def detection_s(self) -> float:
        """Longest time HAProxy keeps sending requests to a dead backend: `fall` failed
        checks `inter` apart, plus the check that was under way when it died."""
        opts = dict(zip(self.check.split()[::2], self.check.split()[1::2]))
        inter_ms, fall = float(opts.get("inter", 2000)), int(opts.get("fall", 3))
        return (fall + 1) * inter_ms / 1000


@dataclass(frozen=True)
class AgentDir:
    provider: str        # installed as /usr/lib/ocf/resource.d/<provider>/
    path: str            # absolute, resolved against the topology file's directory


@dataclass(frozen=True)
class SharedVolume:
    name: str
    path: str            # mount point in every node (a shared disk, as DRBD/SAN would give)


@dataclass(frozen=True)
class OpenStack:
    vip: str
    region: str = "RegionOne"
    services: tuple = ("keystone", "glance", "placement", "neutron", "nova", "cinder")
    bootstrap_with: tuple = ()     # resources that must run for the one-time bootstrap
    identity: str = "keystone"     # Keystone's resource: started alone so the catalog exists
                                   # before any other service authenticates
    layout: str = "active-passive"  # active-active: APIs on every node behind HAProxy
    database: str = "mariadb"       # galera: a multi-primary cluster, one writer via HAProxy
    rabbitmq_cluster: bool = False  # join every node's RabbitMQ into one mirrored cluster
    compute: str = "shared"         # per-node: every node its own nova-compute (host = node name)
    instance_ha: InstanceHA | None = None   # Masakari's and Nova's timings (with the masakari service)

    @property
    def active_active(self) -> bool:
        return self.layout == "active-active"

    @property
    def compute_per_node(self) -> bool:
        return self.compute == "per-node"


@dataclass(frozen=True)
class InstanceHA:
    """The timings that decide how long an evacuation takes (defaults: the projects' own).
    Nova refuses to evacuate while the source service counts as up (`service_down_time`
    after its last report); Masakari's engine disables the service, then sleeps
    `wait_period_after_service_update` before evacuating; hostmonitor polls the cluster
    every `monitoring_interval`."""
    monitoring_interval: int = 60               # masakari-hostmonitor
    wait_period_after_service_update: int = 180  # masakari-engine
    service_down_time: int = 60                 # nova
    report_interval: int = 10                   # nova-compute
    segment: str = "compute"                    # the failover segment holding every compute host
    recovery_method: str = "auto"


@dataclass(frozen=True)
class Resources:
    primitives: tuple = ()
    groups: tuple = ()
    clones: tuple = ()
    colocations: tuple = ()
    orders: tuple = ()

    def ids(self) -> set[str]:
        return {r.id for r in (*self.primitives, *self.groups, *self.clones)}

    def primitives_under(self, ids) -> list[str]:
        """Primitive ids inside the given resources (primitives, groups, clones), in order."""
        groups = {g.id: list(g.members) for g in self.groups}
        clones = {c.id: c.rsc for c in self.clones}
        out = []
        for rid in ids:
            if rid in clones:
                out += self.primitives_under([clones[rid]])
            elif rid in groups:
                out += groups[rid]
            else:
                out.append(rid)
        return out

    def dependents(self, rid: str) -> set[str]:
        """Primitives Pacemaker stops or restarts when `rid` fails: later members of its
        group, and whatever is ordered after it or its group (transitively)."""
        found: set[str] = set()
        todo = [rid]
        while todo:
            cur = todo.pop()
            for g in self.groups:
                if cur in g.members:
                    later = list(g.members)[list(g.members).index(cur) + 1:]
                    todo += [m for m in later if m not in found]
                    found.update(later)
                    todo.append(g.id)
            for c in self.clones:
                if c.rsc == cur:
                    todo.append(c.id)
            for o in self.orders:
                if o.first == cur:
                    new = set(self.primitives_under([o.then])) - found
                    found |= new
                    todo += list(new) + [o.then]
        found.discard(rid)
        return found

    # what OpenStack services talk to at runtime, by the agent that runs it
    BACKING_AGENTS = ("systemd:mariadb", "systemd:mysql", "ocf:heartbeat:galera", "ocf:heartbeat:mysql",
                      "systemd:rabbitmq-server", "ocf:rabbitmq:rabbitmq-server-ha",
                      "ocf:heartbeat:rabbitmq-cluster", "systemd:memcached")

    def runtime_clients(self, rid: str) -> set[str]:
        """Services whose monitors may fail while `rid` is gone although no constraint ties
        them to it: every OpenStack service uses the database, the message queue and the
        cache (seen on os-aa-2node: neutron's API stopped answering while MariaDB restarted)."""
        by_id = {p.id: p for p in self.primitives}
        if rid not in by_id or by_id[rid].agent not in self.BACKING_AGENTS:
            return set()
        return {p.id for p in self.primitives if p.agent == "ocf:harness:openstack-api"}



@dataclass(frozen=True)
class Topology:
    name: str
    source: str
    subnet: str
    nodes: tuple
    vips: tuple
    corosync: Corosync
    layers: tuple
    properties: dict
    rsc_defaults: dict
    op_defaults: dict
    resources: Resources
    http_checks: tuple
    agents: tuple = ()
    shared_volumes: tuple = ()
    openstack: OpenStack | None = None
    haproxy: Haproxy | None = None
    fencing: Fencing | None = None
    # client probe interval this topology is measured at (--probe-interval overrides): a
    # heavy control plane on a small host is loaded by 0.25 s probes themselves
    probe_interval: float = 0.25
    # cores the topology needs to be judged (`host: {min_cpus: N}`): on a smaller host a failure
    # with the CPU saturated throughout is the host's, reported as an expected failure
    min_cpus: int = 0
    # the nodes' interface on the cluster network, `${cluster.nic}` in resource params: the
    # backend's (a container's eth0, a VM's eth1 beside Vagrant's management NIC)
    cluster_nic: str = "eth0"

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in topology {self.name}")

    def vip(self, name: str) -> Vip:
        for v in self.vips:
            if v.name == name:
                return v
        raise KeyError(f"no vip {name!r} in topology {self.name}")

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def relocated(self, subnet: str) -> "Topology":
        """The same plan moved to another subnet of the same size, host parts kept.

        Lets concurrent runs of one topology each use a free network.
        """
        old, new = ipaddress.ip_network(self.subnet), ipaddress.ip_network(subnet)
        if old.prefixlen != new.prefixlen:
            raise TopologyError(f"cannot relocate {self.subnet} to {subnet}: prefix differs")

        def move(ip: str) -> str:
            return moved_ip(ip, old, new)

        qdevice = self.corosync.qdevice
        return dataclasses.replace(
            self, subnet=str(new),
            nodes=tuple(Node(n.name, move(n.ip)) for n in self.nodes),
            vips=tuple(Vip(v.name, move(v.ip)) for v in self.vips),
            corosync=dataclasses.replace(self.corosync, qdevice=qdevice and dataclasses.replace(
                qdevice, ip=move(qdevice.ip))))

    def expand(self, value: Any) -> str:
        """Resolve ${vip.NAME}, ${vip.NAME.prefix}, ${node.NAME} and ${cluster.nic} in a value."""
        def sub(m: re.Match) -> str:
            kind, name, attr = m.groups()
            if kind == "cluster":
                return self.cluster_nic
            if attr == "prefix":
                return str(self.prefixlen)
            return (self.vip(name) if kind == "vip" else self.node(name)).ip
        return PLACEHOLDER.sub(sub, str(value))


# ---------------------------------------------------------------- loading

def moved_ip(ip: str, old, new) -> str:
    """The address with the same host part in subnet `new` as `ip` has in subnet `old`."""
    return str(new.network_address + (int(ipaddress.ip_address(ip)) - int(old.network_address)))


class _Ctx:
    """Carries the file name so every error names file and key."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, problem: str):
        raise TopologyError(f"{self.source}: {key}: {problem}")

    def mapping(self, value, key: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f"must be a mapping, got {type(value).__name__}")
        for k in value:
            if k not in allowed:
                self.fail(f"{key}.{k}" if key else k,
                          f"unknown key (allowed: {', '.join(sorted(allowed))})")
        for k in sorted(required):
            if k not in value:
                self.fail(f"{key}.{k}" if key else k, "required key is missing")
        return value

    def seq(self, value, key: str) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {type(value).__name__}")
        return value

    def ip(self, value, key: str) -> ipaddress.IPv4Address:
        try:
            return ipaddress.IPv4Address(str(value))
        except ValueError:
            self.fail(key, f"{value!r} is not a valid IPv4 address")

    def ident(self, value, key: str, pattern=RSC_ID) -> str:
        if not isinstance(value, str) or not pattern.match(value):
            self.fail(key, f"{value!r} is not a valid name")
        return value


SHIPPED = Path(__file__).resolve().parent / "topologies"
SUFFIXES = (".yaml", ".yml")


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def resolve(value: str, cwd: Path | None = None) -> Path:
    """--topology VALUE: the user's file or directory first (a directory holds one topology
    file, or topology.yaml), then topologies/NAME.yaml under the current directory, then the
    names shipped with the harness. Raises TopologyError with one line saying what was tried."""
    cwd = cwd or Path.cwd()
    path = cwd / value
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        if len(files) == 1:
            return files[0]
        if (path / "topology.yaml").is_file():
            return path / "topology.yaml"
        raise TopologyError(f"{value}: a directory with {len(files)} topology files "
                            f"({', '.join(p.name for p in files) or 'none'}): name one of them")
    if path.suffix in SUFFIXES or "/" in value:
        raise TopologyError(f"{value}: no such topology file")
    for candidate in (cwd / "topologies" / f"{value}.yaml", SHIPPED / f"{value}.yaml"):
        if candidate.is_file():
            return candidate
    raise TopologyError(f"unknown topology {value!r}: not a file or directory here, and not one of "
                        f"the shipped topologies ({', '.join(shipped_names())})")


def load_named(value: str) -> Topology:
    """The topology --topology VALUE names (see resolve)."""
    return load(resolve(value))


def load(path: str | Path) -> Topology:
    path = Path(path)
    return parse(merged(path), str(path))


def merged(path: str | Path):
    """A topology file's data with whatever it `extends` merged in (what parse() reads)."""
    path = Path(path)
    return _extended(_read(path), path, ())


def _read(path: Path):
    if not path.is_file():
        raise TopologyError(f"{path}: no such topology file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise TopologyError(f"{path}: {where}: not valid YAML ({getattr(e, 'problem', e)})") from None


# ---------------------------------------------------------------- extends: a variant of another topology

def _extended(data, path: Path, seen: tuple) -> Any:
    """`extends: BASE` (a file next to this one, or a shipped name): BASE's keys with this
    file's merged over them (see `merge`). A new network.subnet without nodes of its own
    moves BASE's addresses into it, host parts kept."""
    if not isinstance(data, dict) or "extends" not in data:
        return data
    ref = data["extends"]
    if not isinstance(ref, str) or not ref:
        raise TopologyError(f"{path}: extends: must name a topology (a file or a shipped name)")
    base_path = resolve(ref, cwd=path.parent)
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise TopologyError(f"{path}: extends: {ref} leads back to this file (a cycle)")
    base = _extended(_read(base_path), base_path, (*seen, path.resolve()))
    if not isinstance(base, dict):
        raise TopologyError(f"{base_path}: must be a mapping (it is extended by {path})")
    own = {k: v for k, v in data.items() if k != "extends"}
    return _moved(merge(base, own), base, own, path)


def merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`: mappings merge key by key, anything else (lists included)
    replaces, and a key set to null is removed."""
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _moved(merged: dict, base: dict, own: dict, path: Path) -> dict:
    """Base addresses (nodes, VIPs, a quorum device) a variant did not restate, moved into
    the variant's own subnet."""
    old = (base.get("network") or {}).get("subnet")
    new = (merged.get("network") or {}).get("subnet")
    if not (isinstance(old, str) and isinstance(new, str)) or old == new:
        return merged
    try:
        old_net, new_net = ipaddress.ip_network(old), ipaddress.ip_network(new)
    except ValueError:
        return merged                   # parse() names the bad subnet
    if old_net.prefixlen != new_net.prefixlen:
        raise TopologyError(f"{path}: network.subnet: {new} must have the prefix of {old} "
                            f"(the extended topology's), or restate nodes and vips")

    def move(ip):
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return ip                   # parse() names the bad address
        return moved_ip(ip, old_net, new_net) if addr in old_net else ip

    for key in ("nodes", "vips"):
        if key not in own and isinstance(merged.get(key), list):
            merged[key] = [{**e, "ip": move(e.get("ip", ""))} if isinstance(e, dict) else e for e in merged[key]]
    qdevice = (merged.get("corosync") or {}).get("qdevice")
    if isinstance(qdevice, dict) and "ip" in qdevice and "ip" not in ((own.get("corosync") or {}).get("qdevice") or {}):
        merged["corosync"] = {**merged["corosync"], "qdevice": {**qdevice, "ip": move(qdevice["ip"])}}
    return merged


def parse(data, source: str = "<topology>") -> Topology:
    c = _Ctx(source)
    top = c.mapping(data, "", {"name", "description", "image", "network", "nodes", "vips",
                               "corosync", "properties", "rsc_defaults", "op_defaults",
                               "resources", "probes", "agents", "shared_volumes", "openstack",
                               "haproxy", "fencing", "host"},
                    {"name", "network", "nodes"})
    name = c.ident(top["name"], "name", NAME)
    subnet = _subnet(c, top["network"])
    nodes = _nodes(c, top["nodes"], subnet)
    vips = _vips(c, top.get("vips"), subnet, {n.ip for n in nodes})
    image = c.mapping(top.get("image") or {}, "image", {"layers"})
    layers = tuple(c.seq(image.get("layers", ["cluster"]), "image.layers"))
    from .images import LAYERS
    for layer in layers:
        if layer not in LAYERS:
            c.fail("image.layers", f"unknown layer {layer!r} (known: {', '.join(LAYERS)})")
    for section in ("openstack", "haproxy"):
        if top.get(section) is not None and "openstack" not in layers:
            c.fail(section, "needs the openstack image layer (image.layers: [cluster, openstack])")
    resources = _resources(c, top.get("resources") or {})
    fencing = _fencing(c, top.get("fencing"), len(nodes),
                       qdevice=isinstance(top.get("corosync"), dict) and top["corosync"].get("qdevice") is not None)
    properties = _flat(c, top.get("properties"), "properties")
    if fencing is not None:
        if properties.get("stonith-enabled", "true") != "true":
            c.fail("properties.stonith-enabled", "contradicts the fencing section (remove one of them)")
        for prop in sorted(set(fencing.properties()) & set(properties) - {"stonith-enabled"}):
            c.fail(f"properties.{prop}", "is set by the fencing section (remove it here, or set it there)")
        properties = {**properties, **fencing.properties()}
    rsc_defaults = _flat(c, top.get("rsc_defaults"), "rsc_defaults")
    if fencing is not None and fencing.priority_delay and not _weighs_resources(rsc_defaults, resources):
        c.fail("fencing.priority_delay", "needs resources with a priority (rsc_defaults: {priority: 1}): "
                                         "without one neither node is favoured in a fence race")
    topo = Topology(
        name=name, source=source, subnet=str(subnet), nodes=nodes, vips=vips,
        corosync=_corosync(c, top.get("corosync") or {}, nodes, vips, subnet, layers), layers=layers,
        properties=properties, fencing=fencing,
        rsc_defaults=rsc_defaults,
        op_defaults=_flat(c, top.get("op_defaults"), "op_defaults"),
        resources=resources, http_checks=_http_checks(c, top.get("probes") or {}, vips),
        probe_interval=_probe_interval(c, top.get("probes") or {}), min_cpus=_min_cpus(c, top.get("host")),
        agents=_agents(c, top.get("agents"), source), shared_volumes=_volumes(c, top.get("shared_volumes")),
        openstack=_openstack(c, top.get("openstack"), vips, resources),
        haproxy=_haproxy(c, top.get("haproxy"), vips))
    _check_placeholders(c, topo)
    if topo.openstack and topo.openstack.active_active and not topo.haproxy:
        c.fail("openstack.layout", "active-active needs a haproxy section (its frontends hold the VIP's ports)")
    if topo.openstack:
        _check_compute(c, topo)
    return topo


def _weighs_resources(rsc_defaults: dict, resources) -> bool:
    """Some resource has a priority: what priority-fencing-delay weighs nodes by."""
    items = [*resources.primitives, *resources.groups, *resources.clones]
    return "priority" in rsc_defaults or any("priority" in r.meta for r in items)


def _check_compute(c: _Ctx, topo) -> None:
    spec = topo.openstack
    if "masakari" in spec.services and "instance-ha" not in topo.layers:
        c.fail("openstack.services", "masakari needs the instance-ha image layer "
                                     "(image.layers: [cluster, openstack, instance-ha])")
    if spec.compute_per_node:
        cloned = set(topo.resources.primitives_under([cl.id for cl in topo.resources.clones]))
        units = {p.id: p.params.get("unit") for p in topo.resources.primitives}
        if not any(units.get(rid) == "nova-compute.service" for rid in cloned):
            c.fail("openstack.compute", "per-node needs the nova-compute resource in a clone "
                                        "(one nova-compute on every node)")


SERVICES = ("keystone", "glance", "placement", "neutron", "nova", "cinder", "masakari")
BUILTIN_AGENTS = Path(__file__).parent / "agents"


def _agents(c: _Ctx, raw, source: str) -> tuple:
    """Agent directories to install on the nodes: the project's own, and e.g. a user's RA checkout."""
    agents = [AgentDir("harness", str(BUILTIN_AGENTS / "harness"))]
    base = Path(source).resolve().parent
    for i, a in enumerate(c.seq(raw, "agents")):
        key = f"agents[{i}]"
        a = c.mapping(a, key, {"provider", "path"}, {"provider", "path"})
        provider = c.ident(a["provider"], f"{key}.provider", NAME)
        path = (base / str(a["path"])).resolve()
        if not path.is_dir():
            c.fail(f"{key}.path", f"{path} is not a directory")
        if provider == "heartbeat":
            c.fail(f"{key}.provider", "'heartbeat' would overwrite resource-agents' own agents; "
                                      "use another provider name")
        agents = [x for x in agents if x.provider != provider] + [AgentDir(provider, str(path))]
    return tuple(agents)


def _volumes(c: _Ctx, raw) -> tuple:
    vols = []
    for i, v in enumerate(c.seq(raw, "shared_volumes")):
        key = f"shared_volumes[{i}]"
        v = c.mapping(v, key, {"name", "path"}, {"name", "path"})
        if not str(v["path"]).startswith("/"):
            c.fail(f"{key}.path", f"{v['path']!r} must be an absolute path")
        vols.append(SharedVolume(c.ident(v["name"], f"{key}.name", NAME), str(v["path"])))
    return tuple(vols)


def _openstack(c: _Ctx, raw, vips, resources) -> OpenStack | None:
    if raw is None:
        return None
    raw = c.mapping(raw, "openstack", {"vip", "region", "services", "bootstrap_with", "identity", "layout",
                                       "database", "rabbitmq_cluster", "compute", "instance_ha"}, {"vip"})
    if raw["vip"] not in {v.name for v in vips}:
        c.fail("openstack.vip", f"{raw['vip']!r} is not a vip of this topology")
    services = tuple(c.seq(raw.get("services", list(OpenStack.services)), "openstack.services"))
    for s in services:
        if s not in SERVICES:
            c.fail("openstack.services", f"unknown service {s!r} (known: {', '.join(SERVICES)})")
    if "keystone" not in services:
        c.fail("openstack.services", "keystone is required")
    if "masakari" in services and "nova" not in services:
        c.fail("openstack.services", "masakari evacuates nova's instances: it needs nova")
    boot = tuple(c.seq(raw.get("bootstrap_with"), "openstack.bootstrap_with"))
    for r in boot:
        if r not in resources.ids():
            c.fail("openstack.bootstrap_with", f"{r!r} is not a known resource")
    identity = raw.get("identity", "keystone")
    if identity not in resources.ids():
        c.fail("openstack.identity", f"{identity!r} is not a known resource")
    layout = raw.get("layout", "active-passive")
    if layout not in ("active-passive", "active-active"):
        c.fail("openstack.layout", f"{layout!r} is not active-passive or active-active")
    database = raw.get("database", "mariadb")
    if database not in ("mariadb", "galera"):
        c.fail("openstack.database", f"{database!r} is not mariadb or galera")
    mq = raw.get("rabbitmq_cluster", layout == "active-active")
    if not isinstance(mq, bool):
        c.fail("openstack.rabbitmq_cluster", f"{mq!r} is not true or false")
    compute = raw.get("compute", "shared")
    if compute not in ("shared", "per-node"):
        c.fail("openstack.compute", f"{compute!r} is not shared or per-node")
    ih = _instance_ha(c, raw.get("instance_ha"), "masakari" in services)
    return OpenStack(raw["vip"], str(raw.get("region", "RegionOne")), services, boot, identity,
                     layout, database, mq, compute, ih)


def _instance_ha(c: _Ctx, raw, masakari: bool) -> InstanceHA | None:
    if raw is not None and not masakari:
        c.fail("openstack.instance_ha", "needs the masakari service in openstack.services")
    if not masakari:
        return None
    fields = {f: getattr(InstanceHA, f) for f in InstanceHA.__dataclass_fields__}
    raw = c.mapping(raw or {}, "openstack.instance_ha", set(fields))
    values = {}
    for key, default in fields.items():
        value = raw.get(key, default)
        if isinstance(default, int) and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            c.fail(f"openstack.instance_ha.{key}", f"{value!r} is not a whole number of seconds >= 1")
        values[key] = value
    if values["recovery_method"] not in ("auto", "reserved_host", "auto_priority", "rh_priority"):
        c.fail("openstack.instance_ha.recovery_method",
               f"{values['recovery_method']!r} is not auto, reserved_host, auto_priority or rh_priority")
    values["segment"] = c.ident(values["segment"], "openstack.instance_ha.segment", NAME)
    return InstanceHA(**values)


def _is_port(value) -> bool:
    return isinstance(value, int) and 0 < value < 65536


def _haproxy(c: _Ctx, raw, vips) -> Haproxy | None:
    if raw is None:
        return None
    raw = c.mapping(raw, "haproxy", {"check", "frontends"}, {"frontends"})
    vip_names, fronts = {v.name for v in vips}, []
    for i, f in enumerate(c.seq(raw["frontends"], "haproxy.frontends")):
        key = f"haproxy.frontends[{i}]"
        f = c.mapping(f, key, {"name", "vip", "port", "mode", "check_path", "one_active", "check_port", "check"},
                      {"name", "vip", "port"})
        if f["vip"] not in vip_names:
            c.fail(f"{key}.vip", f"{f['vip']!r} is not a vip of this topology")
        if not _is_port(f["port"]):
            c.fail(f"{key}.port", f"{f['port']!r} is not a TCP port")
        if f.get("mode", "http") not in ("http", "tcp"):
            c.fail(f"{key}.mode", f"{f['mode']!r} is not http or tcp")
        if "check_port" in f and not _is_port(f["check_port"]):
            c.fail(f"{key}.check_port", f"{f['check_port']!r} is not a TCP port")
        fronts.append(Frontend(c.ident(f["name"], f"{key}.name", NAME), f["vip"], f["port"],
                               f.get("mode", "http"), str(f.get("check_path", "/")), _bool(c, f.get("one_active", False), f"{key}.one_active"),
                               f.get("check_port"), str(f["check"]) if "check" in f else None))
    if len({(f.vip, f.port) for f in fronts}) != len(fronts):
        c.fail("haproxy.frontends", "two frontends bind the same vip and port")
    return Haproxy(str(raw.get("check", Haproxy.check)), tuple(fronts))


def _subnet(c: _Ctx, net) -> ipaddress.IPv4Network:
    net = c.mapping(net, "network", {"subnet"}, {"subnet"})
    try:
        subnet = ipaddress.IPv4Network(str(net["subnet"]))
    except ValueError as e:
        c.fail("network.subnet", f"{net['subnet']!r} is not a valid IPv4 subnet ({e})")
    if not subnet.is_private or subnet.prefixlen > 28:
        c.fail("network.subnet", f"{subnet} must be a private subnet of /28 or larger")
    return subnet


def _in_subnet(c: _Ctx, ip, subnet, key: str) -> None:
    if ip not in subnet or ip in (subnet.network_address, subnet.broadcast_address,
                                  subnet.network_address + 1):
        c.fail(key, f"{ip} is outside subnet {subnet} or reserved (network, gateway .1, broadcast)")


def _nodes(c: _Ctx, raw, subnet) -> tuple:
    raw = c.seq(raw, "nodes")
    if len(raw) < 2:
        c.fail("nodes", f"a cluster needs at least 2 nodes, got {len(raw)}")
    nodes, seen_names, seen_ips = [], set(), set()
    for i, n in enumerate(raw):
        key = f"nodes[{i}]"
        n = c.mapping(n, key, {"name", "ip"}, {"name", "ip"})
        name = c.ident(n["name"], f"{key}.name", NAME)
        ip = c.ip(n["ip"], f"{key}.ip")
        _in_subnet(c, ip, subnet, f"{key}.ip")
        if name in seen_names:
            c.fail(f"{key}.name", f"duplicate node name {name!r}")
        if ip in seen_ips:
            c.fail(f"{key}.ip", f"duplicate address {ip}")
        seen_names.add(name)
        seen_ips.add(ip)
        nodes.append(Node(name, str(ip)))
    return tuple(nodes)


def _vips(c: _Ctx, raw, subnet, node_ips: set) -> tuple:
    vips, names, ips = [], set(), set()
    for i, v in enumerate(c.seq(raw, "vips")):
        key = f"vips[{i}]"
        v = c.mapping(v, key, {"name", "ip"}, {"name", "ip"})
        name = c.ident(v["name"], f"{key}.name", NAME)
        ip = c.ip(v["ip"], f"{key}.ip")
        _in_subnet(c, ip, subnet, f"{key}.ip")
        if str(ip) in node_ips:
            c.fail(f"{key}.ip", f"{ip} is already a node address")
        if name in names:
            c.fail(f"{key}.name", f"duplicate vip name {name!r}")
        if str(ip) in ips:
            c.fail(f"{key}.ip", f"duplicate address {ip}: two VIPs on one address")
        names.add(name)
        ips.add(str(ip))
        vips.append(Vip(name, str(ip)))
    return tuple(vips)


def _corosync(c: _Ctx, raw, nodes, vips, subnet, layers) -> Corosync:
    n_nodes = len(nodes)
    raw = c.mapping(raw, "corosync", {"transport", "token", "consensus", "two_node", "qdevice"})
    transport = raw.get("transport", "knet")
    if transport not in ("knet", "udpu"):
        c.fail("corosync.transport", f"{transport!r} is not supported (knet, udpu)")
    token = raw.get("token", 1000)
    if not isinstance(token, int) or token < 100:
        c.fail("corosync.token", f"{token!r} must be an integer of milliseconds >= 100")
    consensus = raw.get("consensus")
    if consensus is not None and (not isinstance(consensus, int) or consensus <= token):
        c.fail("corosync.consensus", f"{consensus!r} must be an integer greater than token ({token})")
    qdevice = _qdevice(c, raw.get("qdevice"), nodes, vips, subnet, layers)
    two_node = raw.get("two_node", "auto")
    if two_node == "auto":
        two_node = n_nodes == 2 and qdevice is None
    elif not isinstance(two_node, bool):
        c.fail("corosync.two_node", f"{two_node!r} must be true, false or auto")
    if two_node and n_nodes != 2:
        c.fail("corosync.two_node", f"two_node needs exactly 2 nodes, topology has {n_nodes}")
    if two_node and qdevice:
        c.fail("corosync.two_node", "two_node and a quorum device exclude each other (the device's vote "
                                    "replaces two_node): remove one")
    return Corosync(transport, token, consensus, two_node, qdevice)


def _qdevice(c: _Ctx, raw, nodes, vips, subnet, layers) -> QDevice | None:
    if raw is None:
        return None
    raw = c.mapping(raw, "corosync.qdevice", {"ip", "algorithm"}, {"ip"})
    ip = c.ip(raw["ip"], "corosync.qdevice.ip")
    _in_subnet(c, ip, subnet, "corosync.qdevice.ip")
    if str(ip) in {n.ip for n in nodes} | {v.ip for v in vips}:
        c.fail("corosync.qdevice.ip", f"{ip} is a node's or a VIP's address: the arbiter needs its own")
    algorithm = raw.get("algorithm", "ffsplit")
    if algorithm not in ("ffsplit", "lms"):
        c.fail("corosync.qdevice.algorithm", f"{algorithm!r} is not supported (ffsplit, lms)")
    if "qdevice" not in layers:
        c.fail("corosync.qdevice", "needs the qdevice image layer (image.layers: [cluster, qdevice])")
    if QNETD in {n.name for n in nodes}:
        c.fail("corosync.qdevice", f"a node is named {QNETD!r}, the arbiter's name: rename the node")
    return QDevice(str(ip), algorithm)


FENCE_DEVICES = ("docker",)


def _fencing(c: _Ctx, raw, n_nodes: int, qdevice: bool = False) -> Fencing | None:
    if raw is None:
        return None
    raw = c.mapping(raw, "fencing", {"device", "delay_max", "priority_delay", "timeout"}, {"device"})
    if raw["device"] not in FENCE_DEVICES:
        c.fail("fencing.device", f"{raw['device']!r} is not supported ({', '.join(FENCE_DEVICES)})")
    values = {}
    for key, low in (("delay_max", 0), ("priority_delay", 0), ("timeout", 10)):
        v = raw.get(key, getattr(Fencing, key))
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            c.fail(f"fencing.{key}", f"{v!r} must be a whole number of seconds >= {low}")
        values[key] = v
    # with a quorum device only the half that keeps quorum fences: there is no race to settle
    if n_nodes == 2 and not qdevice and not (values["delay_max"] or values["priority_delay"]):
        c.fail("fencing", "a 2-node cluster needs delay_max or priority_delay (or a corosync.qdevice): "
                          "else both nodes fence each other at once")
    return Fencing(raw["device"], **values)


def _flat(c: _Ctx, raw, key: str) -> dict:
    raw = raw or {}
    c.mapping(raw, key, set(raw))
    for k, v in raw.items():
        if isinstance(v, (dict, list)):
            c.fail(f"{key}.{k}", "must be a scalar value")
    return {k: _crm_value(v) for k, v in raw.items()}


def _bool(c: _Ctx, v, key: str) -> bool:
    # a quoted "no" is a true string in Python: only YAML booleans are accepted
    if not isinstance(v, bool):
        c.fail(key, f"{v!r} must be true or false (unquoted)")
    return v


def _crm_value(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _agent(c: _Ctx, agent, key: str) -> str:
    if not isinstance(agent, str):
        c.fail(key, "must be a string like ocf:heartbeat:IPaddr2")
    parts = agent.split(":")
    cls = parts[0]
    if cls not in AGENT_CLASSES:
        c.fail(key, f"unknown resource agent class {cls!r} in {agent!r} "
                    f"(known: {', '.join(AGENT_CLASSES)})")
    if (cls == "ocf" and len(parts) != 3) or (cls != "ocf" and len(parts) != 2) or not all(parts):
        c.fail(key, f"{agent!r} is malformed (ocf:PROVIDER:TYPE or CLASS:TYPE)")
    return agent


FENCE_DEVICE_ID = "fence-nodes"     # the stonith resource templates/cib.crm.j2 defines
RESERVED_IDS = {FENCE_DEVICE_ID}


def _resources(c: _Ctx, raw) -> Resources:
    raw = c.mapping(raw, "resources", {"primitives", "groups", "clones", "colocations", "orders"})
    ids: set[str] = set()

    def new_id(value, key):
        rid = c.ident(value, key)
        if rid in RESERVED_IDS:
            c.fail(key, f"{rid!r} is reserved: the harness's fence device has this id")
        if rid in ids:
            c.fail(key, f"duplicate resource/constraint id {rid!r}")
        ids.add(rid)
        return rid

    prims = []
    for i, p in enumerate(c.seq(raw.get("primitives"), "resources.primitives")):
        key = f"resources.primitives[{i}]"
        p = c.mapping(p, key, {"id", "agent", "params", "op", "meta"}, {"id", "agent"})
        ops = c.mapping(p.get("op") or {}, f"{key}.op", {"monitor", "monitor-promoted", "start", "stop",
                                                          "promote", "demote"})
        prims.append(Primitive(new_id(p["id"], f"{key}.id"), _agent(c, p["agent"], f"{key}.agent"),
                               _flat(c, p.get("params"), f"{key}.params"),
                               {k: _flat(c, v, f"{key}.op.{k}") for k, v in ops.items()},
                               _flat(c, p.get("meta"), f"{key}.meta")))
    prim_ids = {p.id for p in prims}
    groups, grouped = [], {}
    for i, g in enumerate(c.seq(raw.get("groups"), "resources.groups")):
        key = f"resources.groups[{i}]"
        g = c.mapping(g, key, {"id", "members", "meta"}, {"id", "members"})
        members = tuple(c.seq(g["members"], f"{key}.members"))
        for m in members:
            if m not in prim_ids:
                c.fail(f"{key}.members", f"{m!r} is not a primitive")
            if m in grouped:
                c.fail(f"{key}.members", f"{m!r} is already a member of group {grouped[m]!r}")
            grouped[m] = g["id"]
        groups.append(Group(new_id(g["id"], f"{key}.id"), members, _flat(c, g.get("meta"), f"{key}.meta")))
    clonable = prim_ids | {g.id for g in groups}
    clones = []
    for i, cl in enumerate(c.seq(raw.get("clones"), "resources.clones")):
        key = f"resources.clones[{i}]"
        cl = c.mapping(cl, key, {"id", "rsc", "meta"}, {"id", "rsc"})
        if cl["rsc"] not in clonable:
            c.fail(f"{key}.rsc", f"{cl['rsc']!r} is not a primitive or group")
        clones.append(Clone(new_id(cl["id"], f"{key}.id"), cl["rsc"], _flat(c, cl.get("meta"), f"{key}.meta")))
    known = clonable | {cl.id for cl in clones}

    def ref(value, key):
        if value not in known:
            c.fail(key, f"{value!r} is not a known resource")
        return value

    colocs = []
    for i, co in enumerate(c.seq(raw.get("colocations"), "resources.colocations")):
        key = f"resources.colocations[{i}]"
        co = c.mapping(co, key, {"id", "rsc", "with", "score"}, {"id", "rsc", "with"})
        colocs.append(Colocation(new_id(co["id"], f"{key}.id"), ref(co["rsc"], f"{key}.rsc"),
                                 ref(co["with"], f"{key}.with"), _score(c, co.get("score", "INFINITY"), f"{key}.score")))
    orders = []
    for i, o in enumerate(c.seq(raw.get("orders"), "resources.orders")):
        key = f"resources.orders[{i}]"
        o = c.mapping(o, key, {"id", "first", "then", "kind"}, {"id", "first", "then"})
        kind = o.get("kind", "Mandatory")
        if kind not in ORDER_KINDS:
            c.fail(f"{key}.kind", f"{kind!r} is not one of {', '.join(ORDER_KINDS)}")
        orders.append(Order(new_id(o["id"], f"{key}.id"), ref(o["first"], f"{key}.first"),
                            ref(o["then"], f"{key}.then"), kind))
    return Resources(tuple(prims), tuple(groups), tuple(clones), tuple(colocs), tuple(orders))


def _score(c: _Ctx, score, key: str) -> str:
    s = str(score)
    if not re.fullmatch(r"[+-]?(INFINITY|inf|\d+)", s):
        c.fail(key, f"{score!r} is not a score (integer or [-]INFINITY)")
    return s


def _min_cpus(c: _Ctx, raw) -> int:
    raw = c.mapping(raw or {}, "host", {"min_cpus"})
    value = raw.get("min_cpus", 0)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024:
        c.fail("host.min_cpus", f"{value!r} is not a whole number of cores")
    return value


def _probe_interval(c: _Ctx, raw) -> float:
    value = raw.get("interval", 0.25) if isinstance(raw, dict) else 0.25
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.05 <= value <= 10:
        c.fail("probes.interval", f"{value!r} is not a number of seconds between 0.05 and 10")
    return float(value)


def _http_checks(c: _Ctx, raw, vips) -> tuple:
    raw = c.mapping(raw, "probes", {"http", "interval"})
    vip_names = {v.name for v in vips}
    checks = []
    for i, h in enumerate(c.seq(raw.get("http"), "probes.http")):
        key = f"probes.http[{i}]"
        h = c.mapping(h, key, {"name", "vip", "port", "path"}, {"name", "vip", "port"})
        if h["vip"] not in vip_names:
            c.fail(f"{key}.vip", f"{h['vip']!r} is not a vip of this topology")
        if not _is_port(h["port"]):
            c.fail(f"{key}.port", f"{h['port']!r} is not a TCP port")
        checks.append(HttpCheck(c.ident(h["name"], f"{key}.name", NAME), h["vip"], h["port"], h.get("path", "/")))
    return tuple(checks)


def _check_placeholders(c: _Ctx, topo: Topology) -> None:
    vips, nodes = {v.name for v in topo.vips}, {n.name for n in topo.nodes}
    for i, p in enumerate(topo.resources.primitives):
        for k, v in p.params.items():
            for kind, name, _ in PLACEHOLDER.findall(v):
                if kind == "cluster":
                    if name != "nic":
                        c.fail(f"resources.primitives[{i}].params.{k}", f"${{cluster.{name}}}: only "
                                                                        "${cluster.nic} exists")
                elif name not in (vips if kind == "vip" else nodes):
                    c.fail(f"resources.primitives[{i}].params.{k}", f"${{{kind}.{name}}} names no such {kind}")
