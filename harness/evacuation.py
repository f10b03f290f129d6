"""Evacuation of a lost compute node's instances: what a watcher records, and a checker.

A watcher polls Nova during a scenario and records, per tracked instance, what the API
says (`server` events: status, host, task state, and the status of the instance's newest
evacuation migration). Milestones of the recovery machinery (node lost, fenced, Masakari's
notification, the compute service disabled or forced down, each evacuate call) are
`stage` events. What a compute node itself says it runs (`hosted` events: host, ids) is
how a duplicate shows: an instance Nova has moved away that still runs on its old host.

`check` judges that history afterwards. Nothing here talks to the cluster.

When is an instance recovered? Nova sets, in this order, the instance's host to the
destination, its status to ACTIVE and the evacuation migration to `done` (its own
functional tests wait for all three): the clock stops only once all three hold. When the
source host returns, its nova-compute destroys its stale copy and marks the migration
`completed`: that is the "source cleaned up" stage.
"""
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

SERVER, STAGE, HOSTED = "server", "stage", "hosted"

# The stages in the order they are expected to happen; a report draws them in this order.
STAGES = ("node lost", "fenced", "notification generated", "notification sent", "notification running", "service disabled",
          "service forced down", "evacuate called", "host changed", "active elsewhere",
          "migration done", "notification finished", "source cleaned up")
# Stages that concern one instance (they carry its id); the others concern the node.
PER_INSTANCE = {"evacuate called", "host changed", "active elsewhere", "migration done",
                "source cleaned up"}
# Nova marks an evacuation migration `done` when the instance runs on the destination, and
# `completed` once the source host's nova-compute, started again, has destroyed its copy
EVACUATED = ("done", "completed")


def _events(history, kind: str) -> list[dict]:
    if hasattr(history, "events"):
        return history.events(kind)
    return sorted((e for e in history if e["kind"] == kind), key=lambda e: e["t"])


def recovered(obs: dict, source: str) -> bool:
    """All three of Nova's marks of a finished evacuation hold in one observation."""
    return (obs.get("status") == "ACTIVE" and obs.get("host") not in (None, "", source)
            and obs.get("migration") in EVACUATED)


def describe(obs: dict | None, source: str) -> str:
    """The state an unrecovered instance is stuck in, as an operator would say it."""
    if obs is None:
        return "never observed"
    where = "still on the dead host" if obs.get("host") == source else f"on {obs.get('host') or 'no host'}"
    task = f", task {obs['task_state']}" if obs.get("task_state") else ""
    mig = f", migration {obs['migration']}" if obs.get("migration") else ", no evacuation migration"
    return f"{obs.get('status') or '?'} {where}{task}{mig}"


# ------------------------------------------------------------------ per instance
@dataclass
class Instance:
    id: str
    name: str
    source: str
    recovered_s: float | None = None     # fault -> all three marks; None: never within the run
    new_host: str | None = None
    state: str = ""                      # what it was last seen as, when not recovered
    stages: dict = field(default_factory=dict)      # stage -> seconds after the fault
    duplicate_on: str | None = None      # a host that still ran it after Nova moved it

    def within(self, target_s: float) -> bool:
        return self.recovered_s is not None and self.recovered_s <= target_s


def tracked(servers: list[dict], source: str, fault_t: float) -> dict[str, str]:
    """The instances on `source` when the fault began (id -> name): each one's last
    observation before the fault says where it was."""
    last: dict[str, dict] = {}
    for e in servers:
        if e["t"] < fault_t:
            last[e["id"]] = e
    return {i: e.get("name") or i for i, e in last.items() if e.get("host") == source}


def _instance(iid: str, name: str, source: str, obs: list[dict], fault_t: float) -> Instance:
    inst = Instance(iid, name, source)
    after = [e for e in obs if e["t"] >= fault_t]
    marks = {"evacuate called": lambda e: bool(e.get("migration")),     # Nova made its migration record
             "host changed": lambda e: e.get("host") not in (None, "", source),
             "active elsewhere": lambda e: e.get("status") == "ACTIVE" and e.get("host") not in (None, "", source),
             "migration done": lambda e: e.get("migration") in EVACUATED,
             "source cleaned up": lambda e: e.get("migration") == "completed"}
    for stage, holds in marks.items():
        first = next((e for e in after if holds(e)), None)
        if first is not None:
            inst.stages[stage] = round(first["t"] - fault_t, 3)
    done = next((e for e in after if recovered(e, source)), None)
    if done is not None:
        inst.recovered_s = round(done["t"] - fault_t, 3)
        inst.new_host = done["host"]
    else:
        inst.state = describe(after[-1] if after else (obs[-1] if obs else None), source)
    return inst


def cluster_stages(history, source: str, fault_t: float) -> list[dict]:
    """"node lost" and "fenced" from what the harness already records: the cluster sampler's
    membership (`cluster` events) and the journal's fencing lines (`clusterlog` events)."""
    out = []
    lost = next((e for e in _events(history, "cluster")
                 if e["t"] >= fault_t and "online" in e and source not in e["online"]), None)
    if lost:
        out.append({"kind": STAGE, "t": lost["t"], "stage": "node lost", "host": source, "id": None})
    fenced = next((e for e in _events(history, "clusterlog")
                   if e["t"] >= fault_t and e["stage"].startswith(f"fencing done: {source} ")), None)
    if fenced:
        out.append({"kind": STAGE, "t": fenced["t"], "stage": "fenced", "host": source, "id": None})
    return out


def _add_stages(inst: Instance, stages: list[dict], fault_t: float) -> None:
    """Node-wide stages (first occurrence after the fault) and this instance's own calls."""
    for e in stages:
        if e["t"] < fault_t:
            continue
        if e["stage"] in PER_INSTANCE and e.get("id") != inst.id:
            continue
        if e.get("host") not in (None, inst.source):
            continue
        # the earliest sign wins (a stage event, or the watcher's observation of its effect)
        t = round(e["t"] - fault_t, 3)
        inst.stages[e["stage"]] = min(t, inst.stages.get(e["stage"], t))


def _duplicate(inst: Instance, servers: list[dict], hosted: list[dict], fault_t: float,
               settled_at: float | None) -> str | None:
    """Where the instance still ran after Nova had moved it: a host listing it (a `hosted`
    event) other than Nova's, or the source itself when, once the source was back and had
    had time to clean up (`settled_at`), Nova's migration record still says `done`: the
    source's nova-compute never destroyed its copy (it does so, and marks the migration
    `completed`, when it starts; a node that was frozen or cut off never restarted it)."""
    if not inst.recovered_s:
        return None
    since = fault_t + inst.recovered_s
    for h in hosted:
        if h["t"] < since or inst.id not in h.get("ids", ()):
            continue
        nova_host = _host_at(servers, inst.id, h["t"])
        if h["host"] != nova_host:
            return h["host"]
    if settled_at is not None:
        late = [e for e in servers if e["id"] == inst.id and e["t"] >= settled_at]
        if late and late[-1].get("migration") == "done":
            return inst.source
    return None


def _host_at(servers: list[dict], iid: str, t: float) -> str | None:
    host = None
    for e in servers:
        if e["id"] == iid and e["t"] <= t:
            host = e.get("host")
    return host


# ------------------------------------------------------------------ verdict
@dataclass
class EvacuationVerdict:
    source: str
    target_s: float
    instances: list = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return sorted(i.recovered_s for i in self.instances if i.recovered_s is not None)

    @property
    def lost(self) -> list[Instance]:
        return [i for i in self.instances if not i.within(self.target_s)]

    @property
    def duplicated(self) -> list[Instance]:
        return [i for i in self.instances if i.duplicate_on]

    @property
    def max_s(self) -> float | None:
        return self.times[-1] if self.times else None

    @property
    def median_s(self) -> float | None:
        return round(statistics.median(self.times), 3) if self.times else None

    @property
    def passed(self) -> bool:
        return bool(self.instances) and not self.lost and not self.duplicated

    def dominant_stage(self) -> tuple[str, float] | None:
        """The stage that took longest, as the median over instances of the time from the
        stage before it (in time order, among the stages that happened) to it. Only stages up
        to the instance's recovery count: what follows (the source cleaned up once the node
        is back) is not part of the outage."""
        spans: dict[str, list[float]] = {}
        for inst in self.instances:
            prev = 0.0
            until = inst.recovered_s if inst.recovered_s is not None else float("inf")
            for stage in sorted((s for s in inst.stages if inst.stages[s] <= until),
                                key=lambda s: (inst.stages[s], STAGES.index(s))):
                spans.setdefault(stage, []).append(inst.stages[stage] - prev)
                prev = inst.stages[stage]
        if not spans:
            return None
        stage, values = max(spans.items(), key=lambda kv: statistics.median(kv[1]))
        return stage, round(statistics.median(values), 3)

    def line(self) -> str:
        n = len(self.instances)
        if not n:
            return f"no instance was on {self.source} when the fault began"
        text = (f"{n} instances on {self.source}: recovered {len(self.times)}, "
                f"max {_s(self.max_s)}, median {_s(self.median_s)}, lost {len(self.lost)} "
                f"(not recovered within the {self.target_s:.0f} s target), duplicated {len(self.duplicated)}")
        dominant = self.dominant_stage()
        if dominant:
            text += f"; longest stage: {dominant[0]} ({dominant[1]:.1f} s)"
        return text

    def problems(self) -> list[str]:
        out = []
        for i in self.instances:
            if i.recovered_s is None:
                out.append(f"instance {i.name} ({i.id}) not recovered: {i.state}")
            elif i.recovered_s > self.target_s:
                out.append(f"instance {i.name} ({i.id}) recovered in {i.recovered_s:.1f} s, "
                           f"after the {self.target_s:.0f} s target")
            if i.duplicate_on:
                out.append(f"instance {i.name} ({i.id}) runs on {i.duplicate_on} as well as on "
                           f"{i.new_host}")
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "target_s": self.target_s, "passed": self.passed,
                "max_s": self.max_s, "median_s": self.median_s, "lost": len(self.lost),
                "duplicated": len(self.duplicated), "dominant_stage": self.dominant_stage(),
                "line": self.line(), "problems": self.problems(),
                "instances": [asdict(i) for i in self.instances]}


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def check(history, source: str, fault_t: float, target_s: float,
          settled_at: float | None = None) -> EvacuationVerdict:
    """Judge the evacuation of the instances that were on `source` when the fault began at
    `fault_t` (history clock). `settled_at`: when the source was back in service long enough
    to have cleaned up (None: it has not come back; duplicates are then judged only from
    `hosted` events). Takes a History or a list of events."""
    servers = _events(history, SERVER)
    stages = sorted(_events(history, STAGE) + cluster_stages(history, source, fault_t), key=lambda e: e["t"])
    hosted = _events(history, HOSTED)
    verdict = EvacuationVerdict(source, target_s)
    for iid, name in sorted(tracked(servers, source, fault_t).items(), key=lambda kv: kv[1]):
        obs = [e for e in servers if e["id"] == iid]
        inst = _instance(iid, name, source, obs, fault_t)
        _add_stages(inst, stages, fault_t)
        inst.duplicate_on = _duplicate(inst, servers, hosted, fault_t, settled_at)
        verdict.instances.append(inst)
    return verdict


def bars(verdict: EvacuationVerdict) -> list[tuple[str, list[tuple[str, float]]]]:
    """Per instance, its stages in time order: what the report's bar chart draws."""
    return [(i.name, sorted(i.stages.items(), key=lambda kv: (kv[1], STAGES.index(kv[0]))))
            for i in verdict.instances]


# Nova's power states (nova.compute.power_state): what the hypervisor says of an instance
POWER_STATES = {0: "NOSTATE", 1: "RUNNING", 3: "PAUSED", 4: "SHUTDOWN", 6: "CRASHED", 7: "SUSPENDED"}


def _epoch(iso: str | None) -> float:
    """An API timestamp (UTC, ISO 8601, "Z" or none) as epoch seconds; -inf when missing."""
    if not iso:
        return float("-inf")
    when = datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def shared_host_outcome(history, host: str, fault_t: float) -> list[dict]:
    """For the layout where one compute identity follows the VIP (`host=` shared): the
    instances cannot be evacuated (their host never goes away), so what matters is what Nova
    shows of them afterwards. Per instance: the last status and power state seen, and when
    (after the fault) each first changed, and whether Nova wrote the record again after the
    fault (`rewritten`): a record untouched since is Nova's memory of the instance from before
    its node died, not evidence that it runs."""
    servers = _events(history, SERVER)
    fault_wall = history.wall(fault_t)
    out = []
    for iid, name in sorted(tracked(servers, host, fault_t).items(), key=lambda kv: kv[1]):
        obs = [e for e in servers if e["id"] == iid]
        before = [e for e in obs if e["t"] < fault_t][-1]
        after = [e for e in obs if e["t"] >= fault_t]
        last = after[-1] if after else before
        row = {"id": iid, "name": name, "status": last.get("status"), "host": last.get("host"),
               "power_state": POWER_STATES.get(last.get("power_state"), last.get("power_state")),
               "rewritten": any(_epoch(e.get("updated")) >= fault_wall for e in after), "changes": []}
        prev = (before.get("status"), before.get("power_state"))
        for e in after:
            cur = (e.get("status"), e.get("power_state"))
            if cur != prev:
                row["changes"].append({"after_s": round(e["t"] - fault_t, 3), "status": cur[0],
                                       "power_state": POWER_STATES.get(cur[1], cur[1])})
                prev = cur
        out.append(row)
    return out


def stay_put(history, host: str, since: float) -> list[str]:
    """Instances that left `host` after `since`: for the faults that must NOT evacuate (the
    node is alive, only nova-compute died). Returns "name: node1 -> node2" lines."""
    servers = _events(history, SERVER)
    moved = []
    for iid, name in tracked(servers, host, since).items():
        later = [e for e in servers if e["id"] == iid and e["t"] >= since and e.get("host") != host]
        if later:
            moved.append(f"{name}: {host} -> {later[0].get('host')}")
    return sorted(moved)


class Recorder:
    """Writes the three kinds of events into a History (what a watcher calls)."""

    def __init__(self, history):
        self.history = history

    def server(self, id: str, name: str, status: str, host: str | None, task_state: str | None,
               migration: str | None, t: float | None = None, power_state: int | None = None,
               updated: str | None = None) -> dict:
        # updated: Nova's own updated_at of the instance (when Nova last wrote its record)
        return self.history.record(SERVER, t=t, id=id, name=name, status=status, host=host,
                                   task_state=task_state, migration=migration, power_state=power_state,
                                   updated=updated)

    def stage(self, stage: str, host: str | None = None, id: str | None = None,
              t: float | None = None, **detail) -> dict:
        # a typo in a stage name would silently drop it from every report
        if stage not in STAGES:
            raise ValueError(f"unknown evacuation stage {stage!r} (known: {', '.join(STAGES)})")
        return self.history.record(STAGE, t=t, stage=stage, host=host, id=id, **detail)

    def hosted(self, host: str, ids: Iterable[str], t: float | None = None) -> dict:
        return self.history.record(HOSTED, t=t, host=host, ids=sorted(ids))
