"""OpenStack API probes: what a client of each API sees during a fault.

    probes = openstack_probes(control_plane.probe_auth())
    with ProbeSet(history, probes): ...

- `os:keystone-login` issues a real password token every attempt (default every
  1 s). It is the only probe that logs in: a login costs Keystone ~200 ms of CPU
  (bcrypt), and four logins per second per API would load the very service we
  measure.
- `os:glance`, `os:nova`, `os:cinder`, `os:placement`, `os:neutron` send one
  cheap authenticated list (GET ...?limit=1) per attempt with a token shared
  through a `TokenSource`, to the public endpoint resolved from the catalog once.

Every request is bounded by `timeout` in total (connect + answer), is never
retried and uses a fresh connection, so a hung API counts as an outage and a
connection pinned to a dead node cannot hide or stretch one. Failed samples carry
a short, stable error class ("Timeout", "ConnectionRefused", "HTTP503",
"Unauthorized", ...) and a detail under 200 characters.
"""
from __future__ import annotations

import errno
import http.client
import json
import re
import threading
import time
import urllib.parse

from .probes import Probe

# api -> (catalog service type, a cheap authenticated list under the endpoint URL)
APIS = {
    "glance": ("image", "/v2/images?limit=1"),
    "nova": ("compute", "/servers?limit=1"),
    "cinder": ("volumev3", "/volumes?limit=1"),
    "placement": ("placement", "/resource_providers"),
    "neutron": ("network", "/v2.0/networks?limit=1"),
}
DEFAULT_APIS = ("keystone", "glance", "nova", "cinder", "placement", "neutron")
REAUTH_INTERVAL = 10.0      # at most one login per this many seconds for the shared token
TOKEN_MAX_AGE = 1800.0      # renew before Keystone's default 1 h expiry turns into 401s
MAX_BODY = 64 * 1024        # the lists are tiny (limit=1); never read more than this
DETAIL_LEN = 199


class NoToken(RuntimeError):
    """The API was not even asked: no token could be obtained (Keystone down at start)."""


# ---------------------------------------------------------------- raw HTTP with a total deadline

def http_request(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
                 timeout: float = 2.0) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request on a new connection, no retries; (status, headers, body prefix).

    The connect gets `timeout`, the rest only what is left of it: a server that
    accepts but never answers (SIGSTOPped, frozen) costs `timeout`, not twice that.
    """
    u = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    deadline = time.monotonic() + timeout
    conn = conn_cls(u.hostname, u.port, timeout=timeout)
    try:
        conn.connect()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connect to {u.netloc} took the whole {timeout}s")
        conn.sock.settimeout(left)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        conn.request(method, target, body=body, headers={**(headers or {}), "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read(MAX_BODY)
    finally:
        conn.close()


def _short(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:DETAIL_LEN]


def response_detail(status: int, headers, body: bytes) -> str:
    """'HTTP 503 req-…: <error message or start of the body>', under 200 characters."""
    rid = headers.get("x-openstack-request-id") or headers.get("x-compute-request-id")
    return _short(f"HTTP {status}{' ' + rid if rid else ''}: {_message(body)}")


def _message(body: bytes) -> str:
    """OpenStack errors are JSON like {"computeFault": {"message": ...}}: keep the message."""
    text = body.decode(errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:400]
    for value in doc.values() if isinstance(doc, dict) else ():
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
    return text[:400]


def status_error(status: int) -> str | None:
    if 200 <= status < 300:
        return None
    return "Unauthorized" if status == 401 else f"HTTP{status}"


# ---------------------------------------------------------------- error classes

def _chain(exc: BaseException):
    """The exception and what it wraps (cause, context, urllib3 `reason`, args)."""
    seen, todo = set(), [exc]
    while todo and len(seen) < 20:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        wrapped = [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args]
        todo += [w for w in wrapped if isinstance(w, BaseException)]


def _is_timeout(e: BaseException) -> bool:
    names = {c.__name__ for c in type(e).__mro__}
    # TimeoutError is socket.timeout; the others are requests' and keystoneauth's wrappers
    return isinstance(e, TimeoutError) or bool(names & {"Timeout", "ConnectTimeout", "ReadTimeout"})


def classify(exc: BaseException) -> str:
    """A short, stable error class for a failed attempt (what the checkers count)."""
    if isinstance(exc, NoToken):
        return "NoToken"
    status = getattr(exc, "http_status", None)      # keystoneauth's HttpError family
    if isinstance(status, int):
        return status_error(status) or f"HTTP{status}"
    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain)
    # refused before timeouts: urllib3 files a refused connect under ConnectTimeoutError
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "Connection refused" in text:
        return "ConnectionRefused"
    if any(_is_timeout(e) for e in chain) or "timed out" in text:
        return "Timeout"
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected))
           for e in chain) or "Connection reset" in text:
        return "ConnectionReset"
    if any(isinstance(e, OSError) and e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) for e in chain):
        return "Unreachable"
    if any(isinstance(e, http.client.HTTPException) for e in chain):
        return "BadResponse"
    if any(isinstance(e, OSError) or type(e).__name__ in ("ConnectFailure", "ConnectionError")
           for e in chain):
        return "ConnectFailure"
    return type(exc).__name__


def failed(exc: BaseException, prefix: str = "") -> tuple[bool, str, str]:
    return False, classify(exc), _short(f"{prefix}{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------- Keystone sessions and the shared token

def make_session(auth: dict, timeout: float):
    """A keystoneauth session for `auth` (ControlPlane.probe_auth()): no retries, short timeout.

    keystoneauth directly rather than openstack.connect(): the SDK merges OS_*
    variables and clouds.yaml, and a probe must use exactly these credentials.
    """
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    plugin = v3.Password(auth_url=auth["auth_url"], username=auth["username"], password=auth["password"],
                         project_name=auth["project_name"],
                         user_domain_name=auth.get("user_domain_name", "Default"),
                         project_domain_name=auth.get("project_domain_name", "Default"))
    return ks_session.Session(auth=plugin, timeout=timeout, connect_retries=0)


def _close(session) -> None:
    close = getattr(session, "close", None)
    if close:
        close()


def endpoint_of(session, service_type: str, region_name: str | None) -> str:
    # skip_discovery: the catalog URL is all we need; a version GET would be one more request
    url = session.get_endpoint(service_type=service_type, interface="public", region_name=region_name,
                               skip_discovery=True)
    if not url:
        raise LookupError(f"no public {service_type} endpoint in the catalog"
                          f"{f' for region {region_name}' if region_name else ''}")
    return url.rstrip("/")


class TokenSource:
    """One token shared by the API probes, obtained through a session-like object
    (`get_token()`, `get_endpoint(**filters)`, `invalidate()`: a keystoneauth Session).

    It logs in once up front; if that fails (Keystone not up yet) the probes ask
    again lazily. After a 401 (e.g. Keystone's database failed over and memcached
    lost the token) it logs in again, but at most once per `reauth_interval`
    seconds for all probes together: a login per failed sample would be the
    probes loading Keystone while it recovers. Until then the old token is kept,
    so the samples keep failing with "Unauthorized", which is what clients see.
    """

    def __init__(self, session, region_name: str | None = None, reauth_interval: float = REAUTH_INTERVAL,
                 max_age: float = TOKEN_MAX_AGE, clock=time.monotonic):
        self.session, self.region_name = session, region_name
        self.reauth_interval, self.max_age, self.clock = reauth_interval, max_age, clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._obtained_at: float | None = None
        self._tried_at: float | None = None         # last login attempt, successful or not
        self._endpoints: dict[str, str] = {}
        self.last_error: BaseException | None = None
        self.logins = 0
        self._login_if_due(None)

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def token(self) -> str:
        """The current token, logging in first if there is none (throttled); NoToken if none."""
        token = self._token
        if token is None or self.clock() - self._obtained_at > self.max_age:
            self._login_if_due(token)
            token = self._token
        if token is None:
            err = self.last_error
            raise NoToken("no token yet: another probe is logging in" if err is None else
                          f"no token; last login failed: {type(err).__name__}: {err}")
        return token

    def renew(self, rejected: str) -> None:
        """`rejected` got a 401: log in again unless someone did, or one did within the interval."""
        self._login_if_due(rejected)

    def endpoint(self, service_type: str) -> str:
        """The public URL from the catalog, looked up once (call after token() succeeded)."""
        with self._lock:
            if service_type not in self._endpoints:
                self._endpoints[service_type] = endpoint_of(self.session, service_type, self.region_name)
            return self._endpoints[service_type]

    def _login_if_due(self, current: str | None) -> None:
        if not self._lock.acquire(blocking=False):
            return              # another probe is logging in right now: keep what we have
        try:
            if self._token != current:
                return          # renewed meanwhile
            if self._tried_at is not None and self.clock() - self._tried_at < self.reauth_interval:
                return
            self._login()
        finally:
            self._lock.release()

    def _login(self) -> None:
        self._tried_at = self.clock()
        self.logins += 1
        try:
            self.session.invalidate()       # else keystoneauth hands back its cached token
            token = self.session.get_token()
        except Exception as e:
            self.last_error = e
            return
        self._token, self._obtained_at, self.last_error = token, self._tried_at, None


# ---------------------------------------------------------------- the probes

class KeystoneLoginProbe(Probe):
    """A real password login (POST /v3/auth/tokens) per attempt: Keystone issues tokens."""
    concurrent = True

    def __init__(self, auth: dict, interval: float = 1.0, timeout: float = 2.0):
        super().__init__("os:keystone-login", interval)
        self.auth, self.timeout = auth, timeout
        self.url = auth["auth_url"].rstrip("/") + "/auth/tokens"
        self._body = json.dumps(password_body(auth)).encode()

    def attempt(self):
        try:
            status, headers, body = http_request("POST", self.url, {"Content-Type": "application/json"},
                                                 self._body, self.timeout)
        except Exception as e:
            return failed(e)
        error = status_error(status)
        if error is None and not headers.get("X-Subject-Token"):
            return False, "NoTokenInAnswer", response_detail(status, headers, body)
        return error is None, error, "" if error is None else response_detail(status, headers, body)

    def describe(self):
        return {**super().describe(), "api": "keystone", "url": self.url, "timeout_s": self.timeout}


def password_body(auth: dict) -> dict:
    user = {"name": auth["username"], "password": auth["password"],
            "domain": {"name": auth.get("user_domain_name", "Default")}}
    project = {"name": auth["project_name"], "domain": {"name": auth.get("project_domain_name", "Default")}}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                     "scope": {"project": project}}}


class ApiProbe(Probe):
    """One authenticated list on an API's public endpoint per attempt.

    By default with the token of a shared TokenSource. `fresh_session=True` logs
    in anew (new session, token, catalog lookup) on every attempt instead: that is
    what a client without token reuse sees, and it costs Keystone a bcrypt per
    sample (four per second per probe at the default interval), so it loads
    Keystone and measures Keystone as much as the API. Use it sparingly.
    """
    concurrent = True

    def __init__(self, api: str, auth: dict | None = None, tokens: TokenSource | None = None,
                 interval: float = 0.25, timeout: float = 2.0, fresh_session: bool = False,
                 session_factory=make_session):
        if api not in APIS:
            raise ValueError(f"unknown API {api!r}; known: {', '.join(APIS)}")
        if (fresh_session or tokens is None) and auth is None:
            raise ValueError(f"probe os:{api}: needs `auth` (or a shared TokenSource)")
        super().__init__(f"os:{api}", interval)
        self.api, self.auth, self.timeout = api, auth, timeout
        self.service_type, self.path = APIS[api]
        self.fresh_session, self.session_factory = fresh_session, session_factory
        self.region_name = (auth or {}).get("region_name")
        self.tokens = None if fresh_session else (
            tokens or TokenSource(session_factory(auth, timeout), self.region_name))
        if self.tokens is not None and self.tokens.has_token:
            self.tokens.endpoint(self.service_type)     # a missing catalog entry fails here, loudly

    def attempt(self):
        if self.fresh_session:
            return self._attempt_fresh()
        try:
            token = self.tokens.token()
            url = self.tokens.endpoint(self.service_type) + self.path
        except Exception as e:
            return failed(e)
        ok, error, detail = self._get(url, token)
        if error == "Unauthorized":
            self.tokens.renew(token)
        return ok, error, detail

    def _attempt_fresh(self):
        session = self.session_factory(self.auth, self.timeout)
        try:
            token = session.get_token()
            url = endpoint_of(session, self.service_type, self.region_name) + self.path
        except Exception as e:
            return failed(e, "login: ")
        finally:
            _close(session)
        return self._get(url, token)

    def _get(self, url: str, token: str):
        try:
            status, headers, body = http_request("GET", url, {"X-Auth-Token": token,
                                                              "Accept": "application/json"}, None, self.timeout)
        except Exception as e:
            return failed(e)
        error = status_error(status)
        # no detail on success: the checkers list distinct details as "served by",
        # and an API answer does not say which node served it
        return error is None, error, "" if error is None else response_detail(status, headers, body)

    def describe(self):
        return {**super().describe(), "api": self.api, "service_type": self.service_type, "path": self.path,
                "timeout_s": self.timeout, "fresh_session": self.fresh_session}


def openstack_probes(auth: dict, apis=DEFAULT_APIS, interval: float = 0.25, login_interval: float = 1.0,
                     timeout: float = 2.0, fresh_session: bool = False,
                     session_factory=make_session) -> list[Probe]:
    """The login probe (if "keystone" is in `apis`) and one probe per other API, sharing one token.

    Never raises because Keystone is down: the shared token is then fetched lazily.
    """
    unknown = [a for a in apis if a != "keystone" and a not in APIS]
    if unknown:
        raise ValueError(f"unknown APIs {unknown}; known: keystone, {', '.join(APIS)}")
    probes: list[Probe] = []
    if "keystone" in apis:
        probes.append(KeystoneLoginProbe(auth, login_interval, timeout))
    others = [a for a in apis if a != "keystone"]
    tokens = None
    if others and not fresh_session:
        tokens = TokenSource(session_factory(auth, timeout), auth.get("region_name"))
    probes += [ApiProbe(a, auth, tokens, interval, timeout, fresh_session, session_factory) for a in others]
    return probes
