"""Writes during a failover (Jepsen-style): a history of write operations and a checker.

Writers record each operation as it starts (invoke) and as it ends (ok / fail / unknown)
into the run's History; after recovery a read-back says what actually exists, and
`check` compares the two. Nothing here talks to the cluster.

The outcome vocabulary is Jepsen's: `ok` means the server acknowledged the write, `fail`
means it said no, `unknown` means we cannot tell (a timeout, a dropped connection, the
run ended mid-call). Only the read-back can resolve an unknown, so a timeout is never
recorded as a failure.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

KIND = "write"
ADDS = {"create", "insert"}                 # ops whose effect is "the object exists"
OPS = ADDS | {"delete"}
OUTCOMES = {"ok", "fail", "unknown"}

# States, compared lower-cased (Nova says BUILD, Cinder creating, Glance queued).
# Gone: the object is deleted (or will be with no further work), i.e. not "live".
GONE = {"deleted", "soft_deleted", "pending_delete"}
# Transitional: work in progress. Fine right after the write, "stuck" once older than the target.
TRANSITIONAL = {"build", "rebuild", "rebuilding", "resize", "migrating", "reboot", "hard_reboot",
                "creating", "deleting", "attaching", "detaching", "extending", "retyping",
                "downloading", "uploading", "saving", "queued", "importing", "backing-up",
                "restoring-backup", "pending_create", "pending_update"}


def _state(s: str) -> str:
    return (s or "").lower()


def is_error(state: str) -> bool:
    # error_deleting is an end state (the service gave up), not work in progress
    return _state(state).startswith("error") or _state(state) == "killed"


def is_live(state: str) -> bool:
    """Still there as far as a user is concerned: not deleted and not on its way out."""
    return _state(state) not in GONE and _state(state) != "deleting"


# ------------------------------------------------------------------ recording
@dataclass(frozen=True)
class Token:
    """What a writer holds between invoke and completion. `seq` pairs the events: the same
    key may see several operations (create, then delete; a retry), possibly concurrently."""
    seq: int
    op: str
    obj: str
    key: str | int


class WriteLog:
    """Records write operations into a History as `write` events (thread-safe: the History
    locks its appends; the only state here is the sequence counter)."""

    def __init__(self, history):
        self.history = history
        self._lock = threading.Lock()
        self._seq = 0

    @property
    def calls(self) -> int:
        """How many operations were invoked so far."""
        return self._seq

    def invoke(self, op: str, obj: str, key: str | int) -> Token:
        if op not in OPS:
            raise ValueError(f"unknown write op {op!r} (one of {sorted(OPS)})")
        with self._lock:
            self._seq += 1
            token = Token(self._seq, op, obj, key)
        self._record(token, "invoke", None, "")
        return token

    def ok(self, token: Token, id: str | None = None) -> None:
        self._record(token, "ok", id, "")

    def fail(self, token: Token, detail: str) -> None:
        """The server said no (an error answer). A timeout is `unknown`, not this."""
        self._record(token, "fail", None, detail)

    def unknown(self, token: Token, detail: str) -> None:
        """We cannot tell whether it happened (timeout, connection reset, 502 from a proxy)."""
        self._record(token, "unknown", None, detail)

    def _record(self, token: Token, phase: str, id: str | None, detail: str) -> None:
        # every event names op/obj/key, so each line of the saved history reads on its own
        self.history.record(KIND, seq=token.seq, op=token.op, obj=token.obj, key=token.key,
                            phase=phase, id=id, detail=(detail or "")[:200])


# ------------------------------------------------------------------ operations
@dataclass
class Op:
    op: str
    obj: str
    key: str | int
    id: str | None
    outcome: str                    # ok | fail | unknown
    invoked_at: float
    completed_at: float | None      # None: no completion was recorded
    detail: str = ""

    @property
    def duration(self) -> float | None:
        return None if self.completed_at is None else round(self.completed_at - self.invoked_at, 4)


def operations(history) -> list[Op]:
    """Pair each invoke with its first completion, in invoke order. An invoke with no
    completion (the run ended mid-call) is unknown. Takes a History or a list of events."""
    events = history.events(KIND) if hasattr(history, "events") else \
        sorted((e for e in history if e["kind"] == KIND), key=lambda e: e["t"])
    ops: dict[int, Op] = {}
    for e in events:
        if e["phase"] == "invoke":
            ops[e["seq"]] = Op(e["op"], e["obj"], e["key"], None, "unknown", e["t"], None,
                               "no completion recorded")
        elif e["seq"] in ops and ops[e["seq"]].completed_at is None:
            op = ops[e["seq"]]
            op.outcome, op.completed_at, op.detail = e["phase"], e["t"], e.get("detail") or ""
            op.id = e.get("id")
    return sorted(ops.values(), key=lambda o: o.invoked_at)


def latency_samples(ops: Iterable[Op]) -> list[tuple[float, float, str]]:
    """(invoked_at, duration, outcome) of each completed op, for a timeline."""
    return [(o.invoked_at, o.duration, o.outcome) for o in ops if o.completed_at is not None]


# ------------------------------------------------------------------ checking
@dataclass(frozen=True)
class Observation:
    """One object the read-back found under a key (a list per key, so duplicates show)."""
    id: str | None
    state: str                      # ACTIVE, available, BUILD, creating, deleting; "present" for rows


def observe_rows(rows: Iterable[int]) -> dict[tuple[str, int], list[Observation]]:
    """A table's row numbers (as SELECTed, repeats kept) as the read-back mapping for `check`."""
    observed: dict[tuple[str, int], list[Observation]] = {}
    for n in rows:
        observed.setdefault(("row", n), []).append(Observation(None, "present"))
    return observed


@dataclass
class WriteVerdict:
    acknowledged: int = 0
    lost: int = 0
    stuck: int = 0
    duplicate: int = 0
    resurrected: int = 0
    deleting: int = 0               # acknowledged deletes still under way at the read-back (younger than the target)
    error: int = 0                  # objects in an error state: reported, not a failure by itself
    unknown: int = 0
    unknown_applied: int = 0
    unknown_not_applied: int = 0
    failed_but_applied: int = 0
    client_abandoned: int = 0       # waiting for the client's next step, which never came (an unanswered two-step create)
    rows_expected: int | None = None    # None: no row writes in this history
    rows_observed: int | None = None
    problems: list = field(default_factory=list)

    @property
    def rows_mismatch(self) -> bool:
        return self.rows_expected is not None and self.rows_expected != self.rows_observed

    @property
    def passed(self) -> bool:
        return not (self.lost or self.stuck or self.duplicate or self.resurrected or self.rows_mismatch)

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed, "line": self.line()}

    def line(self) -> str:
        text = (f"acknowledged writes {self.acknowledged}, lost {self.lost}, stuck {self.stuck}, "
                f"duplicate {self.duplicate}, unknown {self.unknown} (resolved: "
                f"{self.unknown_applied} applied, {self.unknown_not_applied} not applied)")
        extras = [("resurrected", self.resurrected), ("still being deleted", self.deleting), ("error", self.error),
                  ("failed but applied", self.failed_but_applied),
                  ("left waiting for an unanswered client", self.client_abandoned)]
        text += "".join(f", {name} {n}" for name, n in extras if n)
        if self.rows_mismatch:
            text += f", rows {self.rows_observed} != expected {self.rows_expected}"
        return text

    def _problem(self, type_: str, obj: str, key, id, state, reason: str) -> None:
        self.problems.append({"type": type_, "obj": obj, "key": key, "id": id, "state": state,
                              "reason": reason})


def check(ops: Iterable[Op], observed: Mapping[tuple[str, str | int], list[Observation]],
          target_s: float, now: float) -> WriteVerdict:
    """Judge the writes against the read-back. `now` and `target_s` are on the history's
    clock: an object still in a transitional state whose last write was invoked more than
    `target_s` before `now` is stuck."""
    v = WriteVerdict()
    by_key: dict[tuple, list[Op]] = {}
    for o in sorted(ops, key=lambda o: o.invoked_at):
        by_key.setdefault((o.obj, o.key), []).append(o)
        v.acknowledged += o.outcome == "ok"
        v.unknown += o.outcome == "unknown"
    row_keys_present = 0
    for (obj, key), kops in by_key.items():
        obs = list(observed.get((obj, key)) or [])
        present = _judge_ops(v, obj, key, kops, obs, target_s, now)
        _judge_states(v, obj, key, kops, obs, target_s, now)
        row_keys_present += obj == "row" and present
    if any(obj == "row" for obj, _ in by_key):
        # catches what per-key checks cannot: rows under keys nobody wrote
        v.rows_expected = row_keys_present
        v.rows_observed = sum(len(obs or []) for (obj, _), obs in observed.items() if obj == "row")
        if v.rows_mismatch:
            v._problem("count", "row", None, None, None,
                       f"{v.rows_observed} rows observed, expected {v.rows_expected} "
                       "(acknowledged + unknown-applied + failed-but-applied)")
    return v


def _judge_ops(v: WriteVerdict, obj: str, key, kops: list[Op], obs: list[Observation],
               target_s: float, now: float) -> bool:
    """Each op on one key against the read-back; returns whether the key should exist
    (for the row count). Only the key's last op is resolved by the read-back: an earlier
    unknown was overwritten by what followed, so it stays unresolved. An acknowledged delete
    is asynchronous in Nova and Cinder (204/202, then the service deletes): the object may
    still be there, like any work in progress, until the target has passed."""
    seen = bool(obs)                            # any trace proves a create happened
    live = [o for o in obs if is_live(o.state)]
    last_state = obs[-1].state if obs else None
    ids = ",".join(o.id for o in obs if o.id) or None
    should_exist = False
    for i, op in enumerate(kops):
        later = kops[i + 1:]
        adds = op.op in ADDS
        if op.outcome == "ok" and adds:
            should_exist = True
            if not live and not any(o.op == "delete" for o in later):
                why = "not found" if not obs else f"only seen {last_state}"
                v.lost += 1
                v._problem("lost", obj, key, op.id, last_state, f"acknowledged {op.op} {why} in the read-back")
        elif op.outcome == "ok":                # acknowledged delete
            should_exist = False
            if live and not any(o.op in ADDS for o in later):
                age = now - op.invoked_at
                if age <= target_s:
                    v.deleting += 1
                else:
                    v.resurrected += 1
                    v._problem("resurrected", obj, key, ids, last_state,
                               f"acknowledged delete, still there ({live[-1].state}) {age:.0f}s later "
                               f"(target {target_s:.0f}s)")
        elif not later:                         # last op, outcome unknown or fail: resolve it
            applied = seen if adds else not live
            if applied:
                should_exist = adds
            if op.outcome == "unknown":
                v.unknown_applied += applied
                v.unknown_not_applied += not applied
            elif applied:
                v.failed_but_applied += 1
                v._problem("failed-but-applied", obj, key, ids, last_state,
                           f"{op.op} failed ({op.detail}) but its effect shows in the read-back")
    return should_exist


def _awaits_the_client(obj: str, state: str, last: Op) -> bool:
    """An image is created in two client calls (the record, then its data): `queued` is Glance
    waiting for the second, which only the client can make. When that create was never
    acknowledged (the client got an error or no answer, e.g. the node died between the
    calls), nothing on the server side is stuck (seen on os-ap-2node: the record made just
    before the active node's kill, the upload cut). An acknowledged create left queued is
    still stuck."""
    return obj == "image" and _state(state) == "queued" and last.op == "create" and last.outcome != "ok"


def _judge_states(v: WriteVerdict, obj: str, key, kops: list[Op], obs: list[Observation],
                  target_s: float, now: float) -> None:
    """Per key: duplicates, objects in an error state, and work in progress past the target."""
    ids = ",".join(o.id for o in obs if o.id) or None
    if len(obs) > 1:
        v.duplicate += 1
        v._problem("duplicate", obj, key, ids, obs[-1].state, f"{len(obs)} objects under one key")
    errors = [o for o in obs if is_error(o.state)]
    if errors:
        v.error += 1
        v._problem("error", obj, key, errors[-1].id, errors[-1].state, "in an error state")
    busy = [o for o in obs if _state(o.state) in TRANSITIONAL]
    age = now - kops[-1].invoked_at             # since the last write on the key
    if busy and age > target_s and _awaits_the_client(obj, busy[-1].state, kops[-1]):
        v.client_abandoned += 1
        v._problem("client-abandoned", obj, key, busy[-1].id, busy[-1].state,
                   f"{busy[-1].state}: Glance waits for the data the unanswered create never sent "
                   f"({kops[-1].outcome}: {kops[-1].detail[:80]})")
    elif busy and age > target_s:
        v.stuck += 1
        v._problem("stuck", obj, key, busy[-1].id, busy[-1].state,
                   f"still {busy[-1].state} {age:.0f}s after the last write (target {target_s:.0f}s)")
