"""Run ownership: states, the per-run lock across processes, what gc would do."""
import os
import subprocess
import sys
import uuid

import pytest

from harness import ownership
from harness.cli import gc_plan
from harness.ownership import CRASHED, KEPT, LIVE, RunBusy, RunLock


def test_a_locked_run_is_live_whatever_else():
    assert ownership.classify(None, None, kept=False, locked=True) == LIVE


def test_a_running_creator_makes_a_run_live():
    me = os.getpid()
    assert ownership.classify(str(me), ownership.process_start(me), kept=False, locked=False) == LIVE


def test_a_recycled_pid_is_not_the_owner():
    me = os.getpid()
    assert ownership.classify(str(me), "1", kept=False, locked=False) == CRASHED
    assert ownership.classify(str(me), "1", kept=True, locked=False) == KEPT


def test_a_dead_owner_leaves_kept_or_crashed():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    assert ownership.classify(dead, None, kept=True, locked=False) == KEPT
    assert ownership.classify(dead, None, kept=False, locked=False) == CRASHED


def test_kept_marker(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert not ownership.is_kept("r1")
    ownership.mark_kept("r1")
    assert ownership.is_kept("r1")
    ownership.unmark_kept("r1")
    assert not ownership.is_kept("r1")


def test_second_holder_is_refused_with_one_line_naming_the_first():
    run_id = f"unit-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from harness.ownership import RunLock; "
        f"RunLock({run_id!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy) as e:
            RunLock(run_id).acquire(wait_s=1.0)
        msg = str(e.value)
        assert "\n" not in msg and f"pid {holder.pid}" in msg and f"run {run_id} is in use by" in msg
        assert RunLock(run_id).holder()["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: free again at once
    lock = RunLock(run_id).acquire()
    assert lock.held
    lock.release()
    os.unlink(lock.path)


def test_gc_removes_crashed_spares_kept_and_live_unless_asked():
    runs = {"a": {}, "b": {}, "c": {}}
    states = {"a": (CRASHED, "owner gone"), "b": (KEPT, "left up"), "c": (LIVE, "in use")}
    remove, spare = gc_plan(runs, states, kept=False, force=False)
    assert remove == ["a"] and [r for r, _ in spare] == ["b", "c"]
    assert "--kept" in spare[0][1] and "--force" in spare[1][1]
    assert gc_plan(runs, states, kept=True, force=False)[0] == ["a", "b"]
    assert gc_plan(runs, states, kept=False, force=True)[0] == ["a", "b", "c"]
