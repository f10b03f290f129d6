"""What a run ran on: package versions and resource-agent checksums read from a
node while the cluster exists, and facts about this host. Collecting never fails a
run: a problem becomes a line in `fact_errors`."""
from __future__ import annotations

import platform
from pathlib import Path

PACKAGES = ("pacemaker", "corosync", "resource-agents", "crmsh")
# reported when the node image has them (the OpenStack layer); absent ones are no error
OPTIONAL_PACKAGES = ("fence-agents", "mariadb-server", "galera-4", "rabbitmq-server", "memcached", "haproxy",
                     "keystone", "glance-api", "placement-api", "nova-api", "nova-compute", "cinder-api",
                     "cinder-volume", "neutron-server")
DPKG_QUERY = ("dpkg-query -W -f='${Package} ${Version}\\n' " + " ".join(PACKAGES + OPTIONAL_PACKAGES)
              + " 2>/dev/null")
OCF_ROOT = "/usr/lib/ocf/resource.d"


def parse_dpkg(out: str) -> dict:
    pkgs = {}
    for line in out.splitlines():
        name, _, version = line.strip().partition(" ")
        if name and version:
            pkgs[name] = version
    return pkgs


def ocf_agents(topology) -> list[dict]:
    """[{"resources", "agent", "path", "sha256": None}] for every ocf agent the topology uses."""
    agents: dict[str, dict] = {}
    for p in topology.resources.primitives:
        if p.agent_class != "ocf":
            continue
        _, provider, kind = p.agent.split(":", 2)
        a = agents.setdefault(p.agent, {"resources": [], "agent": p.agent,
                                        "path": f"{OCF_ROOT}/{provider}/{kind}", "sha256": None})
        a["resources"].append(p.id)
    return list(agents.values())


def stock_path(agent: dict) -> str:
    """Where agentpatch keeps the stock file of a replaced agent."""
    from ..agentpatch import STOCK_DIR
    _, provider, kind = agent["agent"].split(":", 2)
    return f"{STOCK_DIR}/{provider}/{kind}"


def parse_sha256sum(out: str) -> dict:
    """{path: hash} from `sha256sum` output."""
    sums = {}
    for line in out.splitlines():
        digest, _, path = line.strip().partition("  ")
        if len(digest) == 64 and path:
            sums[path] = digest
    return sums


def cluster_facts(backend, topology) -> dict:
    """{"packages", "packages_node", "resource_agents", "fact_errors"} from the first node that answers."""
    errors, agents = [], ocf_agents(topology)
    for node in (n.name for n in topology.nodes):
        try:
            pkgs = parse_dpkg(backend.exec(node, DPKG_QUERY, timeout=30, check=False).out)
            if agents:
                paths = " ".join(f"{a['path']} {stock_path(a)}" for a in agents)
                sums = parse_sha256sum(backend.exec(node, f"sha256sum {paths}", timeout=30, check=False).out)
                for a in agents:
                    a["sha256"] = sums.get(a["path"])
                    if stock_path(a) in sums:         # a patched agent replaced this stock file
                        a["stock_sha256"] = sums[stock_path(a)]
                    if a["sha256"] is None:
                        errors.append(f"{node}: no checksum for {a['path']}")
        except Exception as e:        # a dead node: try the next one
            errors.append(f"{node}: {type(e).__name__}: {e}")
            continue
        errors += [f"{node}: package {p} not installed" for p in PACKAGES if p not in pkgs]
        return {"packages": pkgs, "packages_node": node, "resource_agents": agents, "fact_errors": errors}
    return {"packages": None, "packages_node": None, "resource_agents": agents, "fact_errors": errors}


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def backend_version(backend: str) -> str | None:
    """The version of what runs the nodes (the Docker engine, ...)."""
    try:
        from ..backends import get_platform
        return get_platform(backend).version()
    except Exception:       # no engine here: not a fact worth failing for
        return None


def clock_alignment(backend) -> str:
    """How node clocks line up with the probes' (the host's), as the backend last measured
    them: containers share the host's clock; VMs have their own (Backend.clock_offset)."""
    clock = (backend.describe() or {}).get("clock") if backend is not None else None
    if not clock:
        return "the host's clock (nodes share it)"
    return "; ".join(f"{host} {c['offset_s']:+.3f} s (error ±{c['error_s']:.3f} s)"
                     for host, c in sorted(clock.items())) + " (applied to journal milestones)"


def host_facts(backend: str | None = "docker") -> dict:
    return {"kernel": platform.release(), "os": _os_release(), "machine": platform.machine(),
            "python": platform.python_version(), "pytest": _version("pytest"),
            "harness": _version("ha-harness"),
            (backend or "docker"): backend_version(backend) if backend else None}
