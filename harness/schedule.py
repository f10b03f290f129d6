"""Composed, scheduled faults: a plan of steps (offset, fault, hold) run in the
background while the probes measure, reproducible from a seed.

    plan = Schedule.random(seed_for(request.node.nodeid), cluster.node_names)
    with plan.run(nemesis):
        plan.wait()
    # every fault the schedule applied is healed here, also on Ctrl-C or a failure

A step's action is called with the nemesis and returns an applied Fault, e.g.
`lambda n: n.node("node1").kill()`. Steps are described as plain dicts
(kind, target, at_s, hold_s): the plan goes into the history as a "schedule"
event and can be printed, compared, replayed from the seed.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable

# kind -> how to apply it through the nemesis (every one returns an applied Fault)
KINDS: dict[str, Callable[[Any, str], Any]] = {
    "kill": lambda n, node: n.node(node).kill(),
    "freeze": lambda n, node: n.node(node).freeze(),
    "shutdown": lambda n, node: n.node(node).shutdown(),
    "reboot": lambda n, node: n.node(node).reboot(),
    "standby": lambda n, node: n.node(node).standby(),
    "unplug": lambda n, node: n.node(node).unplug(),
    "isolate": lambda n, node: n.isolate(node),
}


class ScheduleError(RuntimeError):
    pass


def seed_for(test_id: str) -> int:
    """A stable 64-bit seed from a pytest node id: same test, same random plan, on any machine
    (unlike hash(), which changes with PYTHONHASHSEED)."""
    return int.from_bytes(hashlib.sha256(test_id.encode()).digest()[:8], "big")


@dataclass
class Step:
    at_s: float                         # offset from the schedule's start
    action: Callable[[Any], Any]        # nemesis -> applied Fault
    hold_s: float | None = None         # heal this long after it was applied; None: at stop()
    kind: str = "custom"
    target: str | None = None

    def describe(self) -> dict:
        return {"kind": self.kind, "target": self.target, "at_s": self.at_s, "hold_s": self.hold_s}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")


def kind_step(kind: str, target: str, at_s: float, hold_s: float | None = None) -> Step:
    _check_kind(kind)
    return Step(at_s, lambda n: KINDS[kind](n, target), hold_s, kind, target)


class Schedule:
    """Steps applied at their offsets by one background thread; see the module doc."""

    def __init__(self, steps=(), seed: int | None = None):
        self.seed = seed
        self.steps: list[Step] = []
        for step in steps:
            if isinstance(step, Step):
                self.steps.append(step)
            else:
                self.add(*step)         # (at_s, action, hold_s)
        self.applied: list[tuple[dict, Any]] = []       # (step description, fault), in order
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()       # one heal at a time, `applied` complete when stop() reads it
        self._healed: set[int] = set()      # id() of faults whose heal ran (never heal twice)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.nemesis = None
        self.start: float | None = None

    # ------------------------------------------------------------ building
    def add(self, at_s: float, action, hold_s: float | None = None, kind: str = "custom",
            target: str | None = None) -> "Schedule":
        if at_s < 0 or (hold_s is not None and hold_s < 0):
            raise ValueError(f"step offsets and holds must be >= 0, got at_s={at_s}, hold_s={hold_s}")
        self.steps.append(Step(at_s, action, hold_s, kind, target))
        return self

    def fault(self, kind: str, target: str, at_s: float, hold_s: float | None = None) -> "Schedule":
        """Add a step of a known kind (see KINDS): `.fault("kill", "node1", at_s=5, hold_s=20)`."""
        self.steps.append(kind_step(kind, target, at_s, hold_s))
        return self

    @classmethod
    def random(cls, seed: int, nodes, kinds=("kill", "freeze", "isolate"), count: int = 3,
               window_s: float = 60, hold_s=(5, 20), overlap: bool = False) -> "Schedule":
        """`count` faults of random kinds on random nodes, all within `window_s` seconds.

        Without `overlap` the faults follow each other (each is healed before the next
        starts), so the cluster never loses more than one node at a time; with it, start
        times are independent and every node may be down at once (two faults share a node
        only when no other node is free then). Offsets and holds are rounded to 0.1 s so
        that the printed plan is the plan.
        """
        if count * hold_s[1] > window_s and not overlap:
            raise ValueError(f"{count} faults held up to {hold_s[1]}s each do not fit one after "
                             f"the other in {window_s}s: widen the window or pass overlap=True")
        if not nodes and count:
            raise ValueError("a random schedule needs at least one node")
        for kind in kinds:
            _check_kind(kind)               # unknown kinds fail now, not mid-run
        rng = random.Random(seed)
        nodes = sorted(nodes)               # the caller's order must not change the plan
        holds = [round(rng.uniform(*hold_s), 1) for _ in range(count)]
        picked = [rng.choice(kinds) for _ in range(count)]
        starts = (_overlapping_starts(rng, window_s, holds) if overlap
                  else _sequential_starts(rng, window_s, holds))
        targets = _targets(rng, nodes, starts, holds)
        return cls([kind_step(*step) for step in zip(picked, targets, starts, holds)], seed)

    def plan(self) -> list[dict]:
        return [s.describe() for s in self._ordered()]

    def _ordered(self) -> list[Step]:
        return sorted(self.steps, key=lambda s: s.at_s)     # stable: ties keep insertion order

    def __str__(self) -> str:
        lines = [f"schedule (seed {self.seed}):" if self.seed is not None else "schedule:"]
        for d in self.plan():
            hold = "until the end" if d["hold_s"] is None else f"for {d['hold_s']}s"
            lines.append(f"  at {d['at_s']:>6}s  {d['kind']} {d['target'] or ''} {hold}")
        return "\n".join(lines)

    # ------------------------------------------------------------ running
    def run(self, nemesis, start: float | None = None) -> "Schedule":
        """Start applying in a background thread; offsets count from `start` (history time, default now)."""
        if self._thread is not None:
            raise ScheduleError("a schedule runs once; build another one (same seed, same plan)")
        self.nemesis = nemesis
        self.start = nemesis.history.now() if start is None else start
        nemesis.history.record("schedule", phase="plan", seed=self.seed, start=round(self.start, 4),
                               steps=self.plan())
        self._thread = threading.Thread(target=self._loop, name="schedule", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Until every step was applied and every held fault healed (True), or `timeout`.

        A step that fails to apply ends the run early (True as well); stop() raises it.
        Faults held until the end (hold_s None) are still active: stop() heals them.
        """
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is not None and not self._thread.is_alive()

    def stop(self, join_timeout: float = 300) -> None:
        """Apply nothing more, heal every fault the schedule applied; raise its first error
        (once: a second stop(), e.g. the `with` exit after an explicit one, only heals)."""
        self._stop.set()
        if self._thread is not None:
            # an apply in flight finishes (a kill can take a while); the thread heals
            # it itself if it returns after this wait gave up
            self._thread.join(join_timeout)
        self._heal_applied()
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        self.nemesis.history.record("schedule", phase="stop", seed=self.seed, applied=len(self.applied),
                                    errors=[f"{type(e).__name__}: {e}" for e in self.errors])
        if self.errors:
            raise ScheduleError(f"schedule step failed: {self.errors[0]}") from self.errors[0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------ the thread
    def _loop(self) -> None:
        pending = list(enumerate(self._ordered()))
        holds: list[tuple[float, int, Any]] = []    # heap of (heal due, tie-break, fault)
        tie = itertools.count()
        history = self.nemesis.history
        while not self._stop.is_set() and (pending or holds):
            next_apply = self.start + pending[0][1].at_s if pending else float("inf")
            next_heal = holds[0][0] if holds else float("inf")
            if self._stop.wait(max(0.0, min(next_apply, next_heal) - history.now())):
                break
            if next_heal <= next_apply:
                self._heal(heapq.heappop(holds)[2])
                continue
            if self._stop.is_set():         # stopped while waking up: apply nothing more
                break
            index, step = pending.pop(0)
            fault = self._apply(index, step)
            if fault is None:
                break
            if step.hold_s is not None:
                heapq.heappush(holds, (history.now() + step.hold_s, next(tie), fault))

    def _apply(self, index: int, step: Step):
        try:
            fault = step.action(self.nemesis)
        except BaseException as e:          # a plan that cannot be applied is a failed test
            self.errors.append(e)
            self._stop.set()
            return None
        with self._lock:
            self.applied.append((step.describe(), fault))
            self.nemesis.history.record("schedule", phase="step", index=index, step=step.describe(),
                                        fault_id=getattr(fault, "id", None),
                                        planned_t=round(self.start + step.at_s, 4))
        if self._stop.is_set():             # stop() came while this fault was being applied
            self._heal_applied()
        return fault

    def _heal(self, fault) -> None:
        # the thread (hold over) and stop() may both reach a fault; its heal runs once
        with self._lock:
            if id(fault) in self._healed:
                return
            self._healed.add(id(fault))
            try:
                fault.heal()
            except Exception as e:      # heal the others anyway; stop() reports it
                self.errors.append(e)

    def _heal_applied(self) -> None:
        """Heal what is still active, newest first (like Nemesis.heal_all), every one even if one fails."""
        with self._lock:
            faults = [f for _, f in reversed(self.applied)]
        for fault in faults:
            self._heal(fault)


def _sequential_starts(rng: random.Random, window_s: float, holds: list[float]) -> list[float]:
    """Starts in order with no overlap: the slack (window minus the holds) is cut at random
    points, and fault i starts at its cut plus the holds of the faults before it."""
    slack = window_s - sum(holds)
    # floor, not round: a cut rounded up could push the last fault past the window
    cuts = sorted(math.floor(rng.uniform(0, slack) * 10) / 10 for _ in holds)
    return [round(cut + sum(holds[:i]), 1) for i, cut in enumerate(cuts)]


def _overlapping_starts(rng: random.Random, window_s: float, holds: list[float]) -> list[float]:
    # independent starts, each early enough for its fault to be healed inside the window
    return [math.floor(rng.uniform(0, max(0.0, window_s - h)) * 10) / 10 for h in holds]


def _targets(rng: random.Random, nodes: list[str], starts: list[float], holds: list[float]) -> list[str]:
    """A node per fault, preferring nodes with no other fault at that time (freezing a
    frozen node fails, and a fault on a dead node tests nothing)."""
    targets: list[str | None] = [None] * len(starts)
    for i in sorted(range(len(starts)), key=lambda i: starts[i]):
        busy = {targets[j] for j in range(len(starts)) if targets[j] is not None
                and starts[j] < starts[i] + holds[i] and starts[i] < starts[j] + holds[j]}
        targets[i] = rng.choice([n for n in nodes if n not in busy] or nodes)
    return targets
