"""OpenStack probes against a fake OpenStack on loopback (real HTTP, a handler we control):
error classes, the total timeout, token reuse and the throttled re-login."""
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from harness import osprobes
from harness.history import History
from harness.osprobes import ApiProbe, KeystoneLoginProbe, TokenSource, classify, openstack_probes
from harness.probes import ProbeSet

PASSWORD = "secret"


class FakeCloud:
    """Keystone (POST /v3/auth/tokens) and every API under /<service type>/ on one server.

    `mode[service_type]`: "ok", an HTTP status, or "slow" (sleeps `slow_s` then answers).
    """

    def __init__(self):
        self.valid: set[str] = set()
        self.mode: dict = {}
        self.keystone_status = 201
        self.slow_s = 1.0
        self.logins = 0
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, service_type: str) -> str:
        return f"{self.base}/{service_type}" + ("/v3/p1" if service_type == "volumev3" else "")

    def token_body(self) -> dict:
        catalog = [{"type": st, "name": st, "id": st, "endpoints": [
            {"id": f"{st}-{i}", "interface": i, "region": "RegionOne", "region_id": "RegionOne",
             "url": self.url(st)} for i in ("public", "internal")]}
            for st, _ in osprobes.APIS.values()]
        return {"token": {"methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
                          "issued_at": "2024-01-01T00:00:00.000000Z", "catalog": catalog,
                          "user": {"id": "u1", "name": "admin", "domain": {"id": "default", "name": "Default"}},
                          "project": {"id": "p1", "name": "admin",
                                      "domain": {"id": "default", "name": "Default"}},
                          "roles": [{"id": "r1", "name": "admin"}]}}

    def _handler(self):
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v3/auth/tokens":
                    return self.reply(404)
                cloud.logins += 1
                if cloud.keystone_status != 201:
                    return self.reply(cloud.keystone_status, b'{"error": {"message": "keystone sad"}}')
                if body["auth"]["identity"]["password"]["user"]["password"] != PASSWORD:
                    return self.reply(401, b'{"error": {"message": "The request you have made requires '
                                           b'authentication.", "code": 401}}')
                token = f"tok-{cloud.logins}"
                cloud.valid.add(token)
                self.reply(201, json.dumps(cloud.token_body()).encode(),
                           [("X-Subject-Token", token), ("Content-Type", "application/json")])

            def do_GET(self):
                cloud.requests.append(self.path)
                service = self.path.split("/")[1]
                mode = cloud.mode.get(service, "ok")
                if mode == "slow":
                    time.sleep(cloud.slow_s)
                    mode = "ok"
                if mode != "ok":
                    fault = {"message": "boom " + "x" * 5000, "code": mode}
                    return self.reply(mode, json.dumps({"computeFault": fault}).encode(),
                                      [("x-openstack-request-id", "req-abc")])
                if self.headers.get("X-Auth-Token") not in cloud.valid:
                    return self.reply(401, b'{"error": {"message": "bad token"}}')
                self.reply(200, b'{"things": []}', [("Content-Type", "application/json")])

        return Handler

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def cloud():
    c = FakeCloud()
    yield c
    c.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def auth_for(url: str, password: str = PASSWORD) -> dict:
    return {"auth_url": f"{url}/v3", "username": "admin", "password": password, "project_name": "admin",
            "user_domain_name": "Default", "project_domain_name": "Default", "region_name": "RegionOne"}


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class FakeSession:
    """Session-like token side: counts logins, can fail the first ones, hands out given tokens."""

    def __init__(self, cloud, fail_first: int = 0):
        self.cloud, self.fail_first, self.calls, self.invalidated = cloud, fail_first, 0, 0

    def invalidate(self):
        self.invalidated += 1

    def get_token(self):
        self.calls += 1
        if self.calls <= self.fail_first:
            raise ConnectionRefusedError(111, "Connection refused")
        token = f"fake-{self.calls}"
        self.cloud.valid.add(token)
        return token

    def get_endpoint(self, service_type, interface, region_name=None, **kw):
        assert interface == "public"
        return self.cloud.url(service_type)


def glance(cloud, clock=None, timeout=2.0, **kw):
    tokens = TokenSource(FakeSession(cloud, **kw), clock=clock or Clock())
    return ApiProbe("glance", tokens=tokens, timeout=timeout)


# ---------------------------------------------------------------- error classes

def test_ok_sample_has_no_detail(cloud):
    assert glance(cloud).attempt() == (True, None, "")
    assert cloud.requests == ["/image/v2/images?limit=1"]


@pytest.mark.parametrize("status", [500, 503, 404])
def test_http_errors_are_classified_with_a_short_detail(cloud, status):
    probe = glance(cloud)
    cloud.mode["image"] = status
    ok, error, detail = probe.attempt()
    assert (ok, error) == (False, f"HTTP{status}")
    assert detail.startswith(f"HTTP {status} req-abc: boom xxx") and len(detail) < 200


def test_a_hung_api_is_a_timeout_within_the_timeout(cloud):
    probe = glance(cloud, timeout=0.3)
    cloud.mode["image"], cloud.slow_s = "slow", 1.5
    t0 = time.monotonic()
    ok, error, detail = probe.attempt()
    assert (ok, error) == (False, "Timeout")
    assert time.monotonic() - t0 < 0.6


def test_accepted_but_never_answered_costs_one_timeout_in_total():
    # the kernel completes the handshake (backlog) but nothing ever reads: a SIGSTOPped API
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            osprobes.http_request("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.3)
        assert time.monotonic() - t0 < 0.6
    finally:
        listener.close()


def test_a_closed_port_is_connection_refused(cloud):
    probe = glance(cloud)
    probe.tokens._endpoints["image"] = f"http://127.0.0.1:{closed_port()}"
    ok, error, detail = probe.attempt()
    assert (ok, error) == (False, "ConnectionRefused") and len(detail) < 200


def test_classify_keystoneauth_and_socket_errors():
    from keystoneauth1 import exceptions as ksa
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError:
            raise ksa.ConnectFailure("Unable to establish connection to http://x/v3/auth/tokens")
    except ksa.ConnectFailure as e:
        assert classify(e) == "ConnectionRefused"
    assert classify(ksa.ConnectTimeout("Request to http://x timed out")) == "Timeout"
    assert classify(ksa.ConnectFailure("Unable to establish connection: [Errno 113] No route")) == "ConnectFailure"
    assert classify(ksa.Unauthorized(http_status=401)) == "Unauthorized"
    assert classify(ksa.http.ServiceUnavailable(http_status=503)) == "HTTP503"
    assert classify(ConnectionResetError(104, "Connection reset by peer")) == "ConnectionReset"
    assert classify(OSError(113, "No route to host")) == "Unreachable"
    assert classify(osprobes.NoToken("x")) == "NoToken"
    assert classify(ValueError("odd")) == "ValueError"


# ---------------------------------------------------------------- the shared token

def test_one_login_serves_every_probe(cloud):
    session = FakeSession(cloud)
    tokens = TokenSource(session, clock=Clock())
    probes = [ApiProbe(api, tokens=tokens) for api in osprobes.APIS]
    for _ in range(3):
        assert all(p.attempt()[0] for p in probes)
    assert session.calls == 1
    assert "/volumev3/v3/p1/volumes?limit=1" in cloud.requests


def test_401_relogs_in_at_most_once_per_interval(cloud):
    clock = Clock()
    probe = glance(cloud, clock)
    session = probe.tokens.session
    assert probe.attempt()[0]
    cloud.valid.clear()                     # Keystone lost its tokens (DB failover, memcached)
    for _ in range(5):
        clock.t += 1.0
        assert probe.attempt()[:2] == (False, "Unauthorized")
    assert session.calls == 1               # no login per sample
    clock.t += 5.0                          # 10 s since the last login
    assert probe.attempt()[:2] == (False, "Unauthorized")   # this sample still failed...
    assert session.calls == 2               # ...but it logged in once
    assert probe.attempt() == (True, None, "")


def test_401_on_several_probes_logs_in_once(cloud):
    clock = Clock()
    tokens = TokenSource(FakeSession(cloud), clock=clock)
    probes = [ApiProbe(api, tokens=tokens) for api in ("glance", "nova", "neutron")]
    old = tokens.token()
    cloud.valid.clear()
    clock.t += 11
    assert probes[0].attempt()[1] == "Unauthorized"     # logs in
    assert all(p.attempt()[0] for p in probes)           # everyone uses the new token
    tokens.renew(old)       # a late 401 of a request sent with the old token
    tokens.renew(old)
    assert tokens.session.calls == 2


def test_keystone_down_at_construction_is_retried_lazily(cloud):
    clock = Clock()
    probe = glance(cloud, clock, fail_first=2)     # construction must not raise
    ok, error, detail = probe.attempt()
    assert (ok, error) == (False, "NoToken") and "ConnectionRefusedError" in detail
    assert probe.tokens.session.calls == 1         # throttled: no login per sample
    clock.t += 10
    assert probe.attempt()[1] == "NoToken"         # second login fails too
    clock.t += 10
    assert probe.attempt() == (True, None, "")
    assert probe.tokens.session.calls == 3


def test_an_old_token_is_renewed_before_it_expires(cloud):
    clock = Clock()
    tokens = TokenSource(FakeSession(cloud), clock=clock, max_age=100)
    first = tokens.token()
    clock.t += 50
    assert tokens.token() == first
    clock.t += 60
    assert tokens.token() != first and tokens.session.calls == 2


def test_failed_renewal_keeps_the_old_token(cloud):
    clock = Clock()
    session = FakeSession(cloud)
    tokens = TokenSource(session, clock=clock, max_age=100)
    first = tokens.token()
    session.fail_first = 99
    clock.t += 200
    assert tokens.token() == first                 # still valid for Keystone until it expires


# ---------------------------------------------------------------- through real keystoneauth

def test_login_probe(cloud):
    assert KeystoneLoginProbe(auth_for(cloud.base)).attempt() == (True, None, "")
    ok, error, detail = KeystoneLoginProbe(auth_for(cloud.base, "wrong")).attempt()
    assert (ok, error) == (False, "Unauthorized") and "requires authentication" in detail
    cloud.keystone_status = 503
    assert KeystoneLoginProbe(auth_for(cloud.base)).attempt()[:2] == (False, "HTTP503")
    down = KeystoneLoginProbe(auth_for(f"http://127.0.0.1:{closed_port()}"))
    assert down.attempt()[:2] == (False, "ConnectionRefused")


def test_factory_shares_one_real_login(cloud):
    probes = openstack_probes(auth_for(cloud.base))
    assert [p.name for p in probes] == ["os:keystone-login", "os:glance", "os:nova", "os:cinder",
                                        "os:placement", "os:neutron"]
    assert probes[0].interval == 1.0 and probes[1].interval == 0.25 and probes[1].timeout == 2.0
    assert all(p.concurrent for p in probes)
    assert all(p.attempt() == (True, None, "") for p in probes[1:])
    assert cloud.logins == 1
    assert len({id(p.tokens) for p in probes[1:]}) == 1
    assert "password" not in json.dumps([p.describe() for p in probes])


def test_factory_with_keystone_down(cloud):
    probes = openstack_probes(auth_for(f"http://127.0.0.1:{closed_port()}"), apis=("glance",), timeout=0.5)
    ok, error, detail = probes[0].attempt()
    assert (ok, error) == (False, "NoToken") and "ConnectFailure" in detail


def test_real_session_errors_are_classified(cloud):
    cloud.keystone_status = 500
    tokens = TokenSource(osprobes.make_session(auth_for(cloud.base), 0.5))
    assert not tokens.has_token and classify(tokens.last_error) == "HTTP500"
    dead = TokenSource(osprobes.make_session(auth_for(f"http://127.0.0.1:{closed_port()}"), 0.5))
    assert classify(dead.last_error) == "ConnectionRefused"


def test_fresh_session_logs_in_every_attempt(cloud):
    probe = ApiProbe("neutron", auth_for(cloud.base), fresh_session=True)
    assert probe.tokens is None and cloud.logins == 0
    assert [probe.attempt() for _ in range(3)] == [(True, None, "")] * 3
    assert cloud.logins == 3
    cloud.keystone_status = 503
    ok, error, detail = probe.attempt()
    assert (ok, error) == (False, "HTTP503") and detail.startswith("login: ")


def test_missing_catalog_entry_fails_at_construction(cloud):
    session = FakeSession(cloud)
    session.get_endpoint = lambda **kw: None
    with pytest.raises(LookupError, match="no public image endpoint"):
        ApiProbe("glance", tokens=TokenSource(session))


def test_unknown_api():
    with pytest.raises(ValueError, match="unknown API"):
        openstack_probes(auth_for("http://127.0.0.1:1"), apis=("swift",))


def test_probes_record_samples_in_a_probe_set(cloud):
    history = History()
    probes = openstack_probes(auth_for(cloud.base), apis=("keystone", "glance"), interval=0.05,
                              login_interval=0.1)
    with ProbeSet(history, probes):
        time.sleep(0.4)
    for name in ("os:keystone-login", "os:glance"):
        samples = history.samples(name)
        assert len(samples) >= 3 and all(s["ok"] for s in samples)


def test_control_plane_probe_auth_matches_connect():
    from harness.openstack import ControlPlane
    topo = SimpleNamespace(openstack=SimpleNamespace(vip="public", region="RegionOne"),
                           vip=lambda name: SimpleNamespace(ip="10.0.0.10"))
    cp = ControlPlane(SimpleNamespace(topology=topo), cluster=None, pw={"admin": "pw"})
    assert cp.probe_auth() == {"auth_url": "http://10.0.0.10:5000/v3", "username": "admin", "password": "pw",
                               "project_name": "admin", "user_domain_name": "Default",
                               "project_domain_name": "Default", "region_name": "RegionOne"}
