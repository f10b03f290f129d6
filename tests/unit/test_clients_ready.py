"""After a scenario the next one starts only once the clients answer again: real HTTP probes
against a local server (up) and a closed port (down)."""
import http.server
import socket
import threading
from types import SimpleNamespace

from harness.history import History
from harness.scenario import Scenario
from harness.topology import HttpCheck


def scenario_for(port: int) -> Scenario:
    topo = SimpleNamespace(http_checks=[HttpCheck("web", "public", port)],
                           vip=lambda name: SimpleNamespace(ip="127.0.0.1"))
    return Scenario("t", SimpleNamespace(topology=topo), History("t", {}),
                    SimpleNamespace(before_node_loss=[]), interval=0.05)


def test_clients_that_answer_are_ready():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sc = scenario_for(server.server_address[1])
        assert sc.clients_ready(timeout=10) == []
        assert sc.history.events("clients-ready")[-1]["ok"] is True
    finally:
        server.shutdown()


def test_a_client_that_does_not_answer_is_named():
    with socket.socket() as s:           # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sc = scenario_for(port)
    assert sc.clients_ready(timeout=1) == ["http:web"]
    assert sc.history.events("clients-ready")[-1]["missing"] == ["http:web"]
