"""The writers' bookkeeping without a cloud: outcomes, the create/delete alternation, the
read-back keyed like the write events (the real calls run in the writes scenarios)."""
import time
from types import SimpleNamespace

import pytest

from harness.history import History
from harness.openstack import writers as w
from harness.writes import check, operations


class HttpError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status_code = status


def test_a_refusal_is_a_failure_and_anything_else_unknown():
    assert w.outcome_of(HttpError(409)) == "fail"
    assert w.outcome_of(HttpError(503)) == "unknown"      # a proxy: the backend may have acted
    assert w.outcome_of(TimeoutError("timed out")) == "unknown"


class FakeOps(w.ObjectOps):
    """Objects in a dict; `fail_next` makes the next create time out after it happened."""
    def __init__(self):
        super().__init__("project")
        self.store, self.n, self.fail_next = {}, 0, False

    def create(self, conn, name):
        self.n += 1
        self.store[f"id{self.n}"] = name
        if self.fail_next:
            self.fail_next = False
            raise TimeoutError("read timed out")
        return f"id{self.n}"

    def delete(self, conn, id):
        del self.store[id]

    def listing(self, conn):
        return [(name, oid, "present") for oid, name in self.store.items()]


def test_creates_then_deletes_the_oldest_and_the_check_resolves_a_timeout():
    h = History("x")
    log = w.WriteLog(h)
    ops = FakeOps()
    writer = w.ObjectWriter(lambda: None, log, ops, 1.0, "t")
    for i in range(4):
        ops.fail_next = i == 3              # the 4th create happens but its answer is lost
        writer.step(None)
    ops_done = operations(h)
    assert [(o.op, o.key, o.outcome) for o in ops_done] == [
        ("create", "hw-project-t-0", "ok"), ("create", "hw-project-t-1", "ok"),
        ("delete", "hw-project-t-0", "ok"), ("create", "hw-project-t-2", "ok"),
        ("create", "hw-project-t-3", "unknown")]
    observed = w.read_back(None, None, [ops])
    v = check(ops_done, observed, 120, h.now())
    assert v.passed and v.acknowledged == 4 and v.unknown_applied == 1


def test_a_row_removed_behind_the_writer_is_lost():
    h = History("x")
    log = w.WriteLog(h)
    for n in (1, 2, 3):
        log.ok(log.invoke("insert", "row", n))

    class Cursor(SimpleNamespace):
        def __enter__(self): return self
        def __exit__(self, *a): pass
        def execute(self, sql, args=()): pass
        def fetchall(self): return [(1,), (3,)]
    db = SimpleNamespace(cursor=lambda: Cursor())
    v = check(operations(h), w.read_back(None, db, []), 120, h.now())
    assert v.lost == 1 and v.problems[0]["key"] == 2 and v.rows_observed == 2


def test_row_ranges_are_short():
    assert w._ranges([1, 2, 3, 5, 7, 8]) == "1-3,5,7-8" and w._ranges([]) == ""


class BusyOps(FakeOps):
    """A create that costs its caller ~5 ms of CPU, so the thread's measured CPU is visible."""
    def create(self, conn, name):
        end = time.thread_time() + 0.005
        while time.thread_time() < end:
            pass
        return super().create(conn, name)


def test_cost_counts_calls_and_the_writer_threads_cpu():
    h = History("x")
    log = w.WriteLog(h)
    writer = w.ObjectWriter(lambda: SimpleNamespace(close=lambda: None), log, BusyOps(), 0.01, "t")
    writer.start()
    deadline = time.monotonic() + 30          # by calls made, not by time: a loaded host is slow
    while log.calls < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.stop()
    group = SimpleNamespace(writers=[writer], rows=SimpleNamespace(cpu_s=0.0, wall_s=0.0), interval=0.01,
                            log=log)
    cost = w.Writers.cost(group)
    assert cost["calls"] == log.calls > 5
    # measured in the writer's own thread: at least the busy loops of its creates, at most its wall time
    assert 0.005 * cost["calls"] / 2 <= writer.cpu_s <= writer.wall_s
    assert cost["client_cpu_s"] == round(writer.cpu_s, 3) and cost["wall_s"] == round(writer.wall_s, 1)
    assert cost["calls_per_s"] == round(cost["calls"] / writer.wall_s, 2)
    assert cost["client_cpu_share"] == round(writer.cpu_s / writer.wall_s, 3)


def test_the_read_back_is_retried_while_the_apis_drop_connections(monkeypatch):
    monkeypatch.setattr(w.time, "sleep", lambda s: None)
    h = History("x")
    failures = [ConnectionError("RemoteDisconnected"), ConnectionError("RemoteDisconnected")]
    ops = FakeOps()
    ops.store["id1"] = "hw-project-t-0"

    def connect():
        if failures:
            raise failures.pop(0)
        return SimpleNamespace(close=lambda: None)
    group = w.Writers.__new__(w.Writers)
    group.cp = SimpleNamespace(connect=connect, connect_db=lambda: None)
    group.history, group.ops, group.tag = h, [ops], "t"
    observed = group._read_back(attempts=3)
    assert [o.id for o in observed[("project", "hw-project-t-0")]] == ["id1"]
    assert len(h.events("note")) == 2
    failures[:] = [ConnectionError("down")] * 3
    with pytest.raises(ConnectionError):
        group._read_back(attempts=3)
