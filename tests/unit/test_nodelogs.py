"""The failure digest: problem lines only, first lines of tracebacks, newer than the scenario."""
import calendar
import time

from harness import nodelogs

SINCE = calendar.timegm(time.strptime("2026-11-21 12:30:00", "%Y-%m-%d %H:%M:%S"))


def write(tmp_path, node, text):
    (tmp_path / f"{node}.log").write_text(text)


def test_digest_keeps_new_problem_lines_only(tmp_path):
    write(tmp_path, "node1", "\n".join([
        "### journal",
        "2026-11-21T12:29:59.000000+0000 node1 pacemaker-controld[80]:  error: old one",
        "2026-11-21T12:31:02.100000+0000 node1 pacemaker-controld[80]:  error: Result of start operation for nova-compute on node1: error",
        "2026-11-21T12:31:03.000000+0000 node1 systemd[1]: nova-compute.service: Main process exited, code=exited, status=1/FAILURE",
        "2026-11-21T12:31:04.000000+0000 node1 pacemaker-controld[80]:  notice: nothing wrong",
        "2026-11-21T12:31:04.500000+0000 node1 pacemaker-schedulerd[119]:  error: Resource start-up "
        "disabled since no STONITH resources have been defined",
        "### service logs",
        "2026-11-21 12:31:05.622 8810 ERROR nova.compute.manager [req-1 - - - - - -] MessagingTimeout: no reply",
        "2026-11-21 12:31:05.622 8810 ERROR nova.compute.manager Traceback (most recent call last):",
        "2026-11-21 12:31:06.000 8810 INFO nova.service [-] Starting compute node",
    ]))
    text = nodelogs.digest(tmp_path, SINCE)
    assert "old one" not in text and "nothing wrong" not in text and "Starting" not in text
    assert "STONITH" not in text
    assert "Traceback" not in text       # continuation lines carry no [request] bracket
    assert "start operation for nova-compute" in text and "exited, code=exited" in text
    assert "MessagingTimeout" in text
    assert text.splitlines()[0] == "--- node1: 3 problem lines since the scenario started"


def test_digest_keeps_the_last_lines_per_node(tmp_path):
    write(tmp_path, "node2", "\n".join(
        f"2026-11-21 12:40:{i:02d}.000 1 ERROR nova.x [-] problem {i}" for i in range(30)))
    text = nodelogs.digest(tmp_path, SINCE, per_node=5)
    assert text.splitlines()[0].endswith("last 5")
    assert "problem 29" in text and "problem 24" not in text


class _Backend:
    """Stands in for a node backend: answers collect()'s command (journal, then service logs)."""
    def __init__(self):
        self.cmds = []

    def exec(self, node, cmd, timeout=60, check=True):
        from harness.backends import ExecResult
        self.cmds.append((node, cmd))
        out = ("journal line\n" if "journalctl" in cmd else "") + ("==> /var/log/nova/x.log\n" if "tail" in cmd else "")
        return ExecResult(0, out, "")


def test_collect_writes_one_file_per_node(tmp_path):
    backend = _Backend()
    nodelogs.collect(backend, ["node1", "node3"], SINCE, tmp_path / "logs")
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["node1.log", "node3.log"]
    text = (tmp_path / "logs" / "node3.log").read_text()
    assert "journal line" in text and "==> /var/log/nova/x.log" in text
    assert f"--since @{SINCE}" in backend.cmds[0][1]


def test_log_glob_works_in_dash():
    # the backend runs commands with `sh -c` (dash): a brace pattern would match nothing
    assert "{" not in nodelogs.LOG_GLOB and "/var/log/cinder/*.log" in nodelogs.LOG_GLOB
