"""Patched resource agents: installed in place of the stock file on every node, so the
CIB stays the same, and put back when a later session on the same kept cluster runs stock.

    --agent ocf:heartbeat:IPaddr2=./IPaddr2          one file
    --agents heartbeat=~/src/resource-agents         a checkout (heartbeat/*) or a provider dir

The first replacement of an agent on a node keeps the stock file under STOCK_DIR; a
session without that override moves it back. The static gate (ocf-tester) runs each
replaced agent inside a node before any fault.
"""
from __future__ import annotations

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

OCF_ROOT = "/usr/lib/ocf/resource.d"
STOCK_DIR = "/var/lib/ha-harness/stock-agents"
SPEC = re.compile(r"^ocf:([A-Za-z0-9_.-]+):([A-Za-z0-9_.-]+)=(.+)$")


class AgentPatchError(ValueError):
    """Bad --agent/--agents input; str() is one line naming the problem."""


@dataclass(frozen=True)
class AgentOverride:
    agent: str          # ocf:PROVIDER:TYPE
    source: str         # the patched file on this host
    content: bytes

    @property
    def provider(self) -> str:
        return self.agent.split(":")[1]

    @property
    def type(self) -> str:
        return self.agent.split(":")[2]

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.type}"

    @property
    def target(self) -> str:
        return f"{OCF_ROOT}/{self.key}"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


# ---------------------------------------------------------------- parsing (pure)

def used_agents(topology) -> list[str]:
    return sorted({p.agent for p in topology.resources.primitives if p.agent_class == "ocf"})


def _read(agent: str, path: Path) -> AgentOverride:
    if not path.is_file():
        raise AgentPatchError(f"{agent}: {path} is not a file")
    content = path.read_bytes()
    if not content.startswith(b"#!"):
        raise AgentPatchError(f"{agent}: {path} is not an executable script (no #! line)")
    return AgentOverride(agent, str(path.resolve()), content)


def parse_agent(spec: str) -> AgentOverride:
    m = SPEC.match(spec)
    if not m:
        raise AgentPatchError(f"--agent {spec!r}: expected ocf:PROVIDER:TYPE=PATH")
    provider, kind, path = m.groups()
    return _read(f"ocf:{provider}:{kind}", Path(path).expanduser())


def parse_agents_dir(spec: str, topology) -> list[AgentOverride]:
    """PROVIDER=DIR: the topology's ocf:PROVIDER agents found in DIR/PROVIDER/ (a ClusterLabs
    checkout) or DIR/ itself (a provider directory)."""
    provider, sep, raw = spec.partition("=")
    if not sep or not provider or not raw:
        raise AgentPatchError(f"--agents {spec!r}: expected PROVIDER=DIR")
    root = Path(raw).expanduser()
    if not root.is_dir():
        raise AgentPatchError(f"--agents {spec!r}: {root} is not a directory")
    base = root / provider if (root / provider).is_dir() else root
    wanted = [a for a in used_agents(topology) if a.split(":")[1] == provider]
    found = []
    for agent in wanted:
        kind = agent.split(":")[2]
        if (base / kind).is_file():
            found.append(_read(agent, base / kind))
        elif (base / f"{kind}.in").is_file():
            raise AgentPatchError(f"--agents {spec!r}: {kind} is generated from {kind}.in; build the "
                                  f"checkout first (./autogen.sh && ./configure && make)")
    if not found:
        raise AgentPatchError(f"--agents {spec!r}: {base} holds none of the topology's ocf:{provider} agents "
                              f"({', '.join(wanted) or 'it uses none'})")
    return found


def parse_overrides(agent_specs, dir_specs, topology) -> list[AgentOverride]:
    """Every override, checked against the topology: an agent it never runs is a mistake."""
    overrides = [parse_agent(s) for s in agent_specs or ()]
    for spec in dir_specs or ():
        overrides += parse_agents_dir(spec, topology)
    used = used_agents(topology)
    seen = {}
    for o in overrides:
        if o.agent not in used:
            raise AgentPatchError(f"topology {topology.name} runs no {o.agent} (it uses: {', '.join(used) or 'none'})")
        if o.agent in seen and seen[o.agent].content != o.content:
            raise AgentPatchError(f"{o.agent} is replaced twice, by {seen[o.agent].source} and {o.source}")
        seen[o.agent] = o
    return list(seen.values())


# ---------------------------------------------------------------- on the nodes

def restore_script(keep: list[str], stock_dir: str = STOCK_DIR, ocf_root: str = OCF_ROOT) -> str:
    """Move back every kept stock file whose agent is not overridden now (one exec per node)."""
    keep_words = " ".join(keep)
    return (f"cd {stock_dir} 2>/dev/null || exit 0; for f in */*; do [ -e \"$f\" ] || continue; "
            f"case \" {keep_words} \" in *\" $f \"*) continue;; esac; "
            f"mv -f \"$f\" {ocf_root}/\"$f\" && echo \"restored $f\"; done")


def backup_script(o: AgentOverride, stock_dir: str = STOCK_DIR, ocf_root: str = OCF_ROOT) -> str:
    """Keep the stock file once: a second patched session must not back up the patch."""
    stock, target = f"{stock_dir}/{o.key}", f"{ocf_root}/{o.key}"
    return (f"mkdir -p {stock_dir}/{o.provider} && {{ [ -e {stock} ] || [ ! -e {target} ] || "
            f"cp -p {target} {stock}; }}")


def apply(backend, node: str, overrides: list[AgentOverride]) -> list[str]:
    """Install the overrides on one node, restoring stock files for everything else; returns
    what it did, one line each."""
    done = []
    r = backend.exec(node, restore_script([o.key for o in overrides]), timeout=60)
    done += [f"{node}: {line}" for line in r.out.splitlines() if line.startswith("restored")]
    for o in overrides:
        backend.exec(node, backup_script(o), timeout=60)
        backend.copy(node, o.content, o.target, mode=0o755)
        done.append(f"{node}: installed {o.agent} from {o.source} (sha256 {o.sha256[:12]})")
    return done


# ---------------------------------------------------------------- the static gate

OCFT_CONFIGS = "/usr/share/resource-agents/ocft/configs"


@dataclass
class GateResult:
    agent: str
    node: str | None
    command: str
    rc: int | None
    output: str
    skipped: str | None = None      # why the tool could not run safely
    tool: str = "ocf-tester"

    @property
    def passed(self) -> bool:
        if self.skipped is not None or self.rc != 0:
            return False
        # ocf-tester ends "... passed all tests"; ocft prints one ERROR line per failed case
        return "passed all tests" in self.output if self.tool == "ocf-tester" else "ERROR:" not in self.output

    def line(self) -> str:
        if self.skipped:
            return f"{self.agent}: {self.tool} skipped ({self.skipped})"
        return f"{self.agent}: {self.tool} on {self.node} {'passed' if self.passed else f'FAILED (rc={self.rc})'}"

    def as_dict(self) -> dict:
        return {"agent": self.agent, "tool": self.tool, "node": self.node, "command": self.command, "rc": self.rc,
                "passed": self.passed, "skipped": self.skipped, "output": self.output[-20000:]}


def spare_address(topology) -> str:
    """An address of the cluster subnet no node or VIP uses: a gate instance of an IP agent
    must never take the VIP that clients are probing."""
    import ipaddress
    net = ipaddress.ip_network(topology.subnet)
    used = {n.ip for n in topology.nodes} | {v.ip for v in topology.vips} | {str(net.network_address + 1)}
    for host in reversed(list(net.hosts())):        # from the top: the plans use low addresses
        if str(host) not in used:
            return str(host)
    raise AgentPatchError(f"no spare address in {topology.subnet} for the gate")


IP_AGENTS = {"IPaddr2", "IPaddr", "IPsrcaddr"}


def gate_params(o: AgentOverride, primitive, topology) -> dict:
    params = {k: topology.expand(v) for k, v in primitive.params.items()}
    if o.type in IP_AGENTS and "ip" in params:
        params["ip"] = spare_address(topology)
    return params


def gate_command(o: AgentOverride, params: dict) -> str:
    opts = " ".join(f"-o {shlex.quote(f'{k}={v}')}" for k, v in sorted(params.items()))
    return f"ocf-tester -n harness-gate {opts} {o.target}"


def gate(cluster, overrides: list[AgentOverride]) -> list[GateResult]:
    """ocf-tester on each replaced agent, on a node that does not run the resource it is
    taken from (start/stop there cannot disturb the service under test)."""
    topology, state = cluster.topology, cluster.state()
    results = []
    for o in overrides:
        prim = next(p for p in topology.resources.primitives if p.agent == o.agent)
        params = gate_params(o, prim, topology)
        busy = set(state.where(prim.id))
        free = [n for n in cluster.node_names if n not in busy]
        if o.type not in IP_AGENTS and not free:
            results.append(GateResult(o.agent, None, "", None, "", skipped=f"{prim.id} runs on every node"))
            continue
        node = (free or cluster.node_names)[0]
        cmd = gate_command(o, params)
        r = cluster.backend.exec(node, cmd, timeout=600, check=False)
        results.append(GateResult(o.agent, node, cmd, r.rc, (r.out + r.err).strip()))
        results += ocft_cases(cluster.backend, node, o)
    return results


def ocft_cases(backend, node: str, o: AgentOverride) -> list[GateResult]:
    """resource-agents' own ocft cases for the agent, where Debian ships them (heartbeat only:
    their AgentRoot is the installed file, i.e. the patch)."""
    if o.provider != "heartbeat":
        return []
    config = f"{OCFT_CONFIGS}/{o.type}"
    if not backend.exec(node, ["test", "-f", config], check=False).ok:
        return []
    cmd = f"ocft make {o.type} && ocft test {o.type}"
    r = backend.exec(node, cmd, timeout=900, check=False)
    return [GateResult(o.agent, node, cmd, r.rc, (r.out + r.err).strip(), tool="ocft")]
