"""Writers during a failover: clients that keep creating and deleting cheap OpenStack objects
through the VIP (openstacksdk), and one that inserts numbered rows into a table of its own
through the VIP's database port, each call recorded as invoke/ok/fail/unknown
(harness.writes.WriteLog). After recovery `read_back` lists what exists, for writes.check.

Outcome rules: an answer below 500 that is an error is `fail` (the server refused); no answer,
a timeout, or a 5xx (a proxy or a backend that may have acted before failing) is `unknown`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..writes import Observation, WriteLog, observe_rows

PREFIX = "hw-"                      # every object a writer makes is named hw-<obj>-<key>
OBJECTS = ("project", "image", "volume", "server")
DB_NAME = "harness_writes"
DB_USER = "harness"


def outcome_of(exc: BaseException) -> str:
    """`fail` when the server answered with a refusal below 500, else `unknown`."""
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int) and status < 500:
        return "fail"
    return "unknown"


class _Paced:
    """A writer's thread: one call every `interval` seconds until stopped."""
    thread_name = "writer"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_s = self.wall_s = 0.0      # the client's own cost, measured in its thread

    def _timed_run(self) -> None:
        cpu, wall = time.thread_time(), time.monotonic()
        try:
            self._run()
        finally:
            self.cpu_s, self.wall_s = time.thread_time() - cpu, time.monotonic() - wall

    def _every(self, step: Callable[[], None]) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            step()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._timed_run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 90) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)


# ------------------------------------------------------------------ one object type
class ObjectOps:
    """create/delete/list of one object type through an openstacksdk connection."""

    def __init__(self, obj: str, image_id: str | None = None, flavor_id: str | None = None):
        if obj not in OBJECTS:
            raise ValueError(f"unknown writer object {obj!r} (one of {', '.join(OBJECTS)})")
        self.obj, self.image_id, self.flavor_id = obj, image_id, flavor_id

    def create(self, conn, name: str) -> str:
        if self.obj == "project":
            return conn.identity.create_project(name=name, domain_id="default").id
        if self.obj == "image":
            return conn.image.create_image(name=name, data=b"\0" * 512, disk_format="raw",
                                           container_format="bare", allow_duplicates=True).id
        if self.obj == "volume":
            return conn.block_storage.create_volume(name=name, size=1).id
        return conn.compute.create_server(name=name, image_id=self.image_id, flavor_id=self.flavor_id,
                                          networks="none").id

    def delete(self, conn, id: str) -> None:
        if self.obj == "project":
            conn.identity.delete_project(id, ignore_missing=False)
        elif self.obj == "image":
            conn.image.delete_image(id, ignore_missing=False)
        elif self.obj == "volume":
            conn.block_storage.delete_volume(id, ignore_missing=False)
        else:
            conn.compute.delete_server(id, ignore_missing=False)

    def listing(self, conn) -> list[tuple[str, str, str]]:
        """(name, id, state) of every object of this type named with the writers' prefix."""
        mine = f"{PREFIX}{self.obj}-"
        if self.obj == "project":
            items = [(p.name, p.id, "present") for p in conn.identity.projects()]
        elif self.obj == "image":
            items = [(i.name, i.id, i.status) for i in conn.image.images()]
        elif self.obj == "volume":
            items = [(v.name, v.id, v.status) for v in conn.block_storage.volumes(all_projects=True)]
        else:
            items = [(s.name, s.id, s.status) for s in conn.compute.servers(all_projects=True)]
        return [(n, i, st) for n, i, st in items if (n or "").startswith(mine)]


class ObjectWriter(_Paced):
    """Alternates: create a new object, then delete the oldest acknowledged one, one call
    every `interval` seconds (a bounded rate a 2-core host sustains)."""

    def __init__(self, connect: Callable, log: WriteLog, ops: ObjectOps, interval: float, tag: str):
        super().__init__(interval)
        self.connect, self.log, self.ops, self.tag = connect, log, ops, tag
        self.thread_name = f"writer-{ops.obj}"
        self._next_key = 0
        self._acked: list[tuple[int, str]] = []        # (key, id) created and acknowledged

    def name(self, key: int) -> str:
        return f"{PREFIX}{self.ops.obj}-{self.tag}-{key}"

    def step(self, conn) -> None:
        if self._acked and self._next_key % 2 == 0:
            key, oid = self._acked.pop(0)
            token = self.log.invoke("delete", self.ops.obj, self.name(key))
            self._call(token, lambda: self.ops.delete(conn, oid), oid)
        key = self._next_key
        self._next_key += 1
        token = self.log.invoke("create", self.ops.obj, self.name(key))
        oid = self._call(token, lambda: self.ops.create(conn, self.name(key)), None)
        if oid:
            self._acked.append((key, oid))

    def _call(self, token, fn, known_id):
        try:
            result = fn()
        except Exception as e:      # every failure is recorded; a writer never dies
            getattr(self.log, outcome_of(e))(token, f"{type(e).__name__}: {e}")
            return None
        self.log.ok(token, result or known_id)
        return result

    def _run(self) -> None:
        conn = self.connect()
        try:
            self._every(lambda: self.step(conn))
        finally:
            conn.close()


# ------------------------------------------------------------------ the database writer
class RowWriter(_Paced):
    """INSERTs numbered rows, one per `interval`, each in its own autocommit transaction;
    the row counts as acknowledged when the INSERT's commit returned."""
    thread_name = "writer-rows"

    def __init__(self, connect_db: Callable, log: WriteLog, interval: float, tag: str):
        super().__init__(interval)
        # rows carry the scenario's tag: the table outlives scenarios, numbers restart in each
        self.connect_db, self.log, self.tag = connect_db, log, tag
        self._n = 0
        self._db = None

    def insert(self) -> None:
        self._n += 1
        token = self.log.invoke("insert", "row", self._n)
        try:
            self._db = self._db or self.connect_db()
            with self._db.cursor() as cur:
                cur.execute("INSERT INTO hw_rows (tag, n) VALUES (%s, %s)", (self.tag, self._n))
            self.log.ok(token)
        except Exception as e:
            self.log.unknown(token, f"{type(e).__name__}: {e}")     # it may have committed
            _close(self._db)
            self._db = None

    def _run(self) -> None:
        try:
            self._every(self.insert)
        finally:
            _close(self._db)


def _ranges(numbers: list[int]) -> str:
    """1,2,3,5,6 -> "1-3,5-6": the rows read back, short enough for a history line."""
    out, start, prev = [], None, None
    for n in numbers:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out)


def _close(db) -> None:
    try:
        if db is not None:
            db.close()
    except Exception:
        pass


def read_back(conn, db, objects: list[ObjectOps], tag: str = "") -> dict:
    """What exists now, keyed like the write events: (obj, name) -> [Observation], and
    ("row", n) -> one Observation per row found (duplicates show as several)."""
    observed: dict = {}
    for ops in objects:
        for name, oid, state in ops.listing(conn):
            observed.setdefault((ops.obj, name), []).append(Observation(oid, state))
    if db is not None:
        with db.cursor() as cur:
            cur.execute("SELECT n FROM hw_rows WHERE tag = %s", (tag,))
            observed.update(observe_rows(n for (n,) in cur.fetchall()))
    return observed


# ------------------------------------------------------------------ all of them
class Writers:
    """The object writers and the row writer of one scenario, started and stopped together;
    `verdict` reads back and judges (harness.writes.check)."""

    def __init__(self, cp, history, tag: str, interval: float = 3.0, objects=OBJECTS):
        from .instances import image_and_flavor
        self.cp, self.history, self.interval = cp, history, interval
        self.log = WriteLog(history)
        conn = cp.connect()
        try:
            image, flavor = image_and_flavor(conn)
        finally:
            conn.close()
        self.ops = [ObjectOps(o, image.id, flavor.id) for o in objects]
        self.writers = [ObjectWriter(cp.connect, self.log, ops, interval, tag) for ops in self.ops]
        self.tag = f"{tag}-{int(time.time())}"
        self.rows = RowWriter(cp.connect_db, self.log, interval, self.tag)

    def start(self) -> "Writers":
        for w in [*self.writers, self.rows]:
            w.start()
        return self

    def stop(self) -> None:
        for w in [*self.writers, self.rows]:
            w.stop()

    def slow_down(self, factor: float = 2.0) -> float:
        """Every writer calls `factor` times less often from its next call on; the new interval."""
        self.interval *= factor
        for w in [*self.writers, self.rows]:
            w.interval = self.interval
        return self.interval

    def cost(self) -> dict:
        """What the writers cost the harness's host: calls per second and the client threads'
        CPU (seconds of CPU per second of wall time; 1.0 = one core busy)."""
        every = [*self.writers, self.rows]
        wall = max((w.wall_s for w in every), default=0.0)
        cpu = sum(w.cpu_s for w in every)
        calls = self.log.calls
        return {"writers": len(every), "interval_s": self.interval, "calls": calls, "wall_s": round(wall, 1),
                "calls_per_s": round(calls / wall, 2) if wall else None, "client_cpu_s": round(cpu, 3),
                "client_cpu_share": round(cpu / wall, 3) if wall else None}

    def verdict(self, target_s: float):
        from ..writes import check, operations
        observed = self._read_back()
        # the read-back joins the history: a report can show what the verdict was judged on
        rows = sorted(n for (obj, n) in observed if obj == "row")
        self.history.record("readback", rows=len(rows), row_keys=_ranges(rows),
                            objects=[{"obj": obj, "key": key, "id": o.id, "state": o.state}
                                     for (obj, key), obs in observed.items() if obj != "row" for o in obs])
        return check(operations(self.history), observed, target_s, self.history.now())

    def _read_back(self, attempts: int = 6, pause_s: float = 5.0) -> dict:
        """read_back, retried: right after a heal the returning node's APIs may still be
        starting behind HAProxy and drop a listing (each failure is noted in the history);
        the last attempt's failure is raised."""
        for attempt in range(1, attempts):
            try:
                return self._read_back_once()
            except Exception as e:
                self.history.record("note", text=f"read-back attempt {attempt} failed "
                                                 f"({type(e).__name__}: {str(e)[:160]}); retrying")
                time.sleep(pause_s)
        return self._read_back_once()

    def _read_back_once(self) -> dict:
        conn = db = None
        try:
            conn, db = self.cp.connect(), self.cp.connect_db()
            return read_back(conn, db, self.ops, self.tag)
        finally:
            if conn is not None:
                conn.close()
            _close(db)

    def cleanup(self) -> list[str]:
        """Delete every object the writers left (rows stay: the table is the run's own)."""
        left = []
        conn = self.cp.connect()
        try:
            for ops in self.ops:
                for name, oid, _ in ops.listing(conn):
                    try:
                        ops.delete(conn, oid)
                    except Exception as e:
                        left.append(f"{ops.obj} {name}: {type(e).__name__}")
        finally:
            conn.close()
        return left
