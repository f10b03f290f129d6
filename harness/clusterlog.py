"""Recovery stages from the cluster's own record: corosync's and Pacemaker's journal lines
(microsecond timestamps), reduced to the milestones that explain a recovery time: the
membership loss, the scheduler's plan, each start/stop/promote and its result, the end of
the transition. Containers share the host's clock, so these line up with the probes; a VM's
journal is shifted by its clock offset as the backend last measured it (Backend.clock_offset)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

_RULES = [
    # corosync
    (re.compile(r"A processor failed, forming new configuration: ([^.]*)"), "corosync: membership loss detected ({0})"),
    (re.compile(r"A new membership \([^)]*\) was formed\. Members (left|joined): ([\d ]+)"),
     "corosync: new membership, members {0}: {1}"),
    (re.compile(r"link: host: (\d+) link: \d+ is down"), "knet: link to node id {0} down"),
    (re.compile(r"This node is within the (non-primary|primary) component"), "corosync: this node is in the {0} component"),
    # pacemaker
    (re.compile(r"Node (\S+) state is now lost"), "pacemaker: {0} lost"),
    (re.compile(r"Our peer on the DC \((\S+)\) is dead"), "pacemaker: DC {0} is dead, electing a new one"),
    (re.compile(r"Actions: (Start|Stop|Move|Recover|Restart|Promote|Demote|Migrate)\s+(\S+)\s+\((.*)\)"),
     "plan: {0} {1} ({2})"),
    (re.compile(r"Calculated transition (\d+)"), "transition {0} calculated"),
    (re.compile(r"Result of (start|stop|promote|demote) operation for (\S+) on (\S+): (.*)"), "{1} {0} on {2}: {3}"),
    (re.compile(r"Result of monitor operation for (\S+) on (\S+): (?!ok)(.*)"), "{0} monitor on {1} failed: {2}"),
    (re.compile(r"Transition (\d+) \(Complete=(\d+).*\): (Complete|Stopped|Terminated)"),
     "transition {0} {2} ({1} actions)"),
    # fencing, as the controller and the fencer report it
    (re.compile(r"Requesting fencing \((\w+)\) (?:of node |targeting (?:node )?)(\S+)"), "fencing requested: {0} {1}"),
    (re.compile(r"(?:Peer|Node) (\S+) was (?:terminated|fenced) \((\w+)\) by (\S+)"), "fencing done: {0} ({1}) by {2}"),
    # the controller runs fewer actions at once while the load is high (load-threshold); on one
    # host the nodes see the host's load, so this explains slow recoveries on a small machine
    (re.compile(r"High CPU load detected: ([\d.]+)"), "pacemaker: throttling actions, CPU load {0}"),
]
_INITIATING = re.compile(r"Initiating (start|stop|promote|demote) operation (\S+?)_(?:start|stop|promote|demote)_0 "
                         r"(?:locally )?on (\S+)")
_CLONE_INSTANCE = re.compile(r":\d+$")


@dataclass(frozen=True)
class LogStage:
    wall: float
    node: str          # whose journal said it
    source: str        # corosync, pacemaker-controld, ...
    stage: str


def stage_of(message: str) -> str | None:
    """The milestone a journal message stands for, or None if it is not one."""
    msg = message.strip()
    m = _INITIATING.search(msg)
    if m:
        return f"{_rsc(m.group(2))} {m.group(1)} on {m.group(3)} initiated"
    for rx, fmt in _RULES:
        m = rx.search(msg)
        if m:
            groups = [re.sub(r"\s+", " ", g.strip()) if g else "" for g in m.groups()]
            if fmt.startswith("plan:"):
                groups[1] = _rsc(groups[1])
            return fmt.format(*groups)
    return None


def _rsc(name: str) -> str:
    # "haproxy:1" -> "haproxy": an anonymous clone's instance number says nothing to a reader
    return _CLONE_INSTANCE.sub("", name)


def parse_journal(text: str, node: str) -> list[LogStage]:
    """`journalctl -o json` output of one node -> its milestones."""
    stages = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        stage = stage_of(str(entry.get("MESSAGE", "")))
        if stage:
            stages.append(LogStage(int(entry["__REALTIME_TIMESTAMP"]) / 1e6, node,
                                   entry.get("SYSLOG_IDENTIFIER", "?"), stage))
    return stages


def merge(stages: list[LogStage], window: float = 1.0) -> list[LogStage]:
    """One line per milestone: the DC and the executing node often log the same one."""
    out: list[LogStage] = []
    last_seen: dict[str, float] = {}
    for s in sorted(stages, key=lambda s: s.wall):
        if s.stage in last_seen and s.wall - last_seen[s.stage] <= window:
            continue
        last_seen[s.stage] = s.wall
        out.append(s)
    return out


def journal_command(since_wall: float, until_wall: float) -> str:
    return (f"journalctl -o json --no-pager -u corosync.service -u pacemaker.service "
            f"--output-fields=MESSAGE,SYSLOG_IDENTIFIER --since @{int(since_wall)} --until @{int(until_wall) + 1}")


def collect(cluster, history, since: float, until: float) -> list[dict]:
    """Read the journals of the running nodes for [since, until] (history time) and record
    each milestone as a `clusterlog` event; returns the events recorded."""
    lo, hi = history.wall(since), history.wall(until)
    found = []
    for node in cluster.running_nodes():
        # a VM keeps its own clock: its journal is read and placed through its measured offset
        off = cluster.backend.clock_offset(node)
        r = cluster.backend.exec(node, journal_command(lo + off, hi + off), check=False, timeout=60)
        found += [replace(s, wall=s.wall - off) for s in parse_journal(r.out, node)]
    events = [history.record("clusterlog", t=s.wall - history.t0_wall, node=s.node, source=s.source, stage=s.stage)
              for s in merge(found) if lo <= s.wall <= hi]
    # what the fence device itself did (host clock, like the journals)
    for wall, stage in cluster.backend.fence_events(lo, hi):
        events.append(history.record("clusterlog", t=wall - history.t0_wall, node="host", source="fence",
                                     stage=stage))
    return events
