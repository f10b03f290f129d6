"""How the fence gate's request log reads on a timeline (pure)."""


def test_gate_requests_are_named_for_the_timeline():
    from harness.backends.docker import gate_request
    nodes = {"ha-harness-r1-node2": "node2"}
    assert gate_request("POST", "/v1.41/containers/ha-harness-r1-node2/restart?t=0", nodes) == "restart node2"
    assert gate_request("GET", "/v1.41/containers/ha-harness-r1-node2/json", nodes) == "inspect node2"
    assert gate_request("GET", "/v1.41/containers/json?all=1", nodes) == "list"
    assert gate_request("GET", "/containers/abc/json", nodes) == "inspect abc"
    assert gate_request("GET", "/_ping", nodes) == "GET /_ping"
