"""Run commands span backends: runs of every backend that answers, each acted on by its own."""
import pytest

from harness import cli


class FakePlatform:
    def __init__(self, name, runs, up=True):
        self.name, self._runs, self.up, self.removed = name, runs, up, []

    def available(self):
        return self.up

    def runs(self):
        return self._runs

    def remove_run(self, run_id):
        self.removed.append(run_id)
        return [f"{self.name} object of {run_id}"]


INFO = {"pid": None, "pid_start": None, "topology": "ha-2node", "source": None, "created": ""}


@pytest.fixture
def platforms(monkeypatch):
    found = {"docker": FakePlatform("docker", {"d1": INFO}),
             "vagrant": FakePlatform("vagrant", {"v1": INFO})}
    monkeypatch.setattr(cli, "get_platform", lambda name: found[name])
    return found


def test_runs_of_every_answering_backend_carry_their_backend(platforms):
    assert {r: i["backend"] for r, i in cli._runs().items()} == {"d1": "docker", "v1": "vagrant"}
    platforms["vagrant"].up = False          # libvirtd not running: its runs are not listed
    assert list(cli._runs()) == ["d1"]


def test_down_removes_through_the_runs_own_backend(platforms, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setattr(cli, "RunLock", lambda run_id: type("L", (), {"acquire": lambda s: None,
                                                                       "release": lambda s: None})())
    assert cli._remove("v1", force=False) == ["vagrant object of v1"]
    assert platforms["vagrant"].removed == ["v1"] and platforms["docker"].removed == []


def test_no_backend_answering_is_one_line(platforms, capsys):
    for p in platforms.values():
        p.up = False
    with pytest.raises(SystemExit):
        cli._ready_for_runs()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "host prepare" in err
