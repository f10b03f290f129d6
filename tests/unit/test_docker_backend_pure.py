"""The Docker backend's pure parts: how the fence gate's requests read on a timeline, container listing."""


def test_gate_requests_are_named_for_the_timeline():
    from harness.backends.docker import gate_request
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
