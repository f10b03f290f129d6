"""The Docker backend's pure parts: how the fence gate's requests read on a timeline, container
listing, a freeze retried when runc times out."""
import pytest


def test_gate_requests_are_named_for_the_timeline():
    from harness.backends.fencegate import gate_request
    nodes = {"ha-harness-r1-node2": "node2"}
    assert gate_request("POST", "/v1.41/containers/ha-harness-r1-node2/restart?t=0", nodes) == "restart node2"
    assert gate_request("GET", "/v1.41/containers/ha-harness-r1-node2/json", nodes) == "inspect node2"
    assert gate_request("GET", "/v1.41/containers/json?all=1", nodes) == "list"
    assert gate_request("GET", "/containers/abc/json", nodes) == "inspect abc"
    assert gate_request("GET", "/_ping", nodes) == "GET /_ping"


def test_containers_are_listed_without_inspecting_each():
    # docker-py's containers.list() inspects every listed container and raises NotFound for
    # one removed in between: the harness lists with the engine's single call instead
    from harness.backends.docker import list_containers

    class Api:
        def containers(self, all, filters):
            assert all and filters == {"label": "io.ha-harness.run=r1"}
            return [{"Id": "abc123", "Names": ["/ha-harness-r1-node1"], "Labels": {"io.ha-harness.run": "r1"},
                     "Created": 1796076000}]

    class Cli:
        api = Api()
    [c] = list_containers(Cli(), "io.ha-harness.run=r1")
    assert c.name == "ha-harness-r1-node1" and c.labels["io.ha-harness.run"] == "r1"
    assert c.created == "2026-11-30T22:00:00Z"


class FlakyFreeze:
    """A container whose freeze times out `fails` times (runc: "unable to freeze")."""
    def __init__(self, fails, late=False, other=False):
        self.fails, self.late, self.other, self.status, self.calls = fails, late, other, "running", 0

    def pause(self):
        from docker.errors import APIError
        self.calls += 1
        if self.other:
            raise APIError("Container is not running")
        if self.fails:
            self.fails -= 1
            if self.late:
                self.status = "paused"          # cgroup v2: the kernel finished the freeze after runc gave up
            raise APIError("Cannot pause container x: OCI runtime pause failed: unable to freeze: unknown")
        self.status = "paused"

    def reload(self):
        pass


@pytest.mark.parametrize("container, calls", [(FlakyFreeze(2), 3), (FlakyFreeze(1, late=True), 1)])
def test_a_freeze_that_times_out_is_retried(monkeypatch, container, calls):
    from harness.backends import docker as d
    monkeypatch.setattr(d.time, "sleep", lambda s: None)
    backend = d.DockerBackend.__new__(d.DockerBackend)
    monkeypatch.setattr(backend, "_container", lambda node: container)
    backend.pause("node1")
    assert container.status == "paused" and container.calls == calls


def test_a_freeze_that_keeps_timing_out_or_fails_otherwise_says_so(monkeypatch):
    from docker.errors import APIError
    from harness.backends import BackendError, docker as d
    monkeypatch.setattr(d.time, "sleep", lambda s: None)
    backend = d.DockerBackend.__new__(d.DockerBackend)
    monkeypatch.setattr(backend, "_container", lambda node: FlakyFreeze(99))
    with pytest.raises(BackendError, match="node1: could not freeze it in 5 attempts"):
        backend.pause("node1")
    monkeypatch.setattr(backend, "_container", lambda node: FlakyFreeze(0, other=True))
    with pytest.raises(APIError, match="not running"):
        backend.pause("node1")
