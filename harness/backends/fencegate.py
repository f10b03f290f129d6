"""The fence gate: the part of Docker's API that fence_docker uses, for one run's nodes only
(Docker containers, or libvirt domains answered in Docker's terms: LibvirtEngine).

Nodes never get the host's Docker socket. Per run, the harness starts this small HTTPS
server on the host side of the run's bridge (its gateway address), with a CA, a server
and a client certificate made for that run: Pacemaker's `fence_docker` in the nodes
presents the client certificate, and the gate passes to the engine only

    GET  /v<api>/containers/json                 (answered with this run's containers only)
    GET  /v<api>/containers/<ref>/json
    POST /v<api>/containers/<ref>/{start,kill,restart}

where <ref> is the name or id of one of this run's containers. Anything else is refused
with 403, and every request is logged with its decision (for the fencing stages of a
report). fence_docker's default API version (1.11) is older than any engine accepts: the
stonith device passes `api_version`.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ..labels import RUN_LABEL
from ..ownership import process_gone, processes

DOCKER_SOCK = "/var/run/docker.sock"
GATE_DIR = Path("/run/ha-harness/fence")     # per run: certificates, pid, request log
PORT = 2376                      # Docker's TLS port; one gate per run, each on its own gateway address
LIST = re.compile(r"^/v(?P<api>[0-9.]+)/containers/json$")
INSPECT = re.compile(r"^/v(?P<api>[0-9.]+)/containers/(?P<ref>[A-Za-z0-9_.-]+)/json$")
ACTION = re.compile(r"^/v(?P<api>[0-9.]+)/containers/(?P<ref>[A-Za-z0-9_.-]+)/(?P<action>start|kill|restart)$")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def engine(method: str, path: str, sock: str = DOCKER_SOCK) -> tuple[int, bytes]:
    conn = _UnixConnection(sock)
    try:
        conn.request(method, path, headers={"Content-Length": "0"} if method == "POST" else {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@dataclass
class Decision:
    status: int          # 200..: passed to the engine (its status); 403: refused
    why: str


@dataclass
class GateLog:
    """Every request with its decision: what the harness reads as fencing stages (also
    appended to `path` as JSON lines when the gate runs as its own process)."""
    entries: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    path: Path | None = None

    def add(self, **entry) -> None:
        entry = {"t": time.time(), **entry}
        with self.lock:
            self.entries.append(entry)
            if self.path is not None:
                with self.path.open("a") as f:
                    f.write(json.dumps(entry) + "\n")

    def since(self, t: float) -> list[dict]:
        with self.lock:
            return [e for e in self.entries if e["t"] >= t]


class DockerEngine:
    """The Docker engine itself: a run's containers by label, requests passed through."""
    def __init__(self, sock: str = DOCKER_SOCK):
        self.sock = sock

    def own(self, run_id: str) -> list[dict]:
        query = urllib.parse.quote(json.dumps({"label": [f"{RUN_LABEL}={run_id}"]}))
        status, body = engine("GET", f"/containers/json?all=1&filters={query}", self.sock)
        if status != 200:
            raise RuntimeError(f"engine answered {status} listing run {run_id}")
        return json.loads(body)

    def forward(self, method: str, path: str) -> tuple[int, bytes]:
        return engine(method, path, self.sock)


class LibvirtEngine:
    """libvirt domains answered in the Docker API's terms, so that the same fence_docker
    in the nodes fences VMs: a run's domains are those named `<prefix>-<run>-...`;
    kill = `virsh destroy` (power cut), start = `virsh start`, restart = both."""
    def __init__(self, prefix: str, virsh=None):
        self.prefix = prefix
        self.virsh = virsh or _virsh

    def own(self, run_id: str) -> list[dict]:
        out = []
        for domain in self.virsh("list", "--all", "--name").split():
            if domain.startswith(f"{self.prefix}-{run_id}-"):
                running = self._running(domain)
                # a container id is 64 hex digits: the domain name's hash stands in for it
                out.append({"Id": hashlib.sha256(domain.encode()).hexdigest(), "Names": [f"/{domain}"],
                            "State": "running" if running else "exited",
                            "Status": "Up" if running else "Exited (137)"})
        return out

    def _running(self, domain: str) -> bool:
        return self.virsh("domstate", domain).strip() in ("running", "paused", "blocked")

    def forward(self, method: str, path: str) -> tuple[int, bytes]:
        if method == "GET" and (m := INSPECT.match(path)):
            running = self._running(m["ref"])
            return 200, json.dumps({"Name": f"/{m['ref']}", "State": {
                "Running": running, "Status": "running" if running else "exited"}}).encode()
        m = ACTION.match(path) if method == "POST" else None
        if m is None:
            return 403, _message(f"{method} {path}: not an endpoint the fence gate serves")
        domain, action = m["ref"], m["action"]
        if action in ("kill", "restart") and self._running(domain):
            self.virsh("destroy", domain)
        if action in ("start", "restart") and not self._running(domain):
            self.virsh("start", domain)
        return 204, b""


def _virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", "-q", *args], capture_output=True,
                          text=True, timeout=120, check=True).stdout


class FenceGate:
    def __init__(self, run_id: str, bind_ip: str, certs: "Certs", port: int = PORT, sock: str = DOCKER_SOCK,
                 log_path: Path | None = None, out_of_service: Path | None = None, engine=None):
        self.run_id, self.bind_ip, self.port, self.sock = run_id, bind_ip, port, sock
        self.engine = engine or DockerEngine(sock)
        self.certs = certs
        # while this file exists the device is "broken" (a fault): every request fails with 503
        self.out_of_service = out_of_service
        self.log = GateLog(path=log_path)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ what the run owns
    def own_containers(self) -> list[dict]:
        return self.engine.own(self.run_id)

    def owns(self, ref: str) -> bool:
        for c in self.own_containers():
            names = {n.lstrip("/") for n in c.get("Names", [])}
            if ref in names or (len(ref) >= 12 and c["Id"].startswith(ref)):
                return True
        return False

    # ------------------------------------------------------------ the filter
    def handle(self, method: str, path: str) -> tuple[int, bytes]:
        url = urllib.parse.urlsplit(path)
        if self.out_of_service is not None and self.out_of_service.exists():
            return 503, _message("fence device out of service (a harness fault)")
        if method == "GET" and (m := LIST.match(url.path)):
            body = json.dumps(self.own_containers()).encode()
            return 200, body
        m = INSPECT.match(url.path) if method == "GET" else ACTION.match(url.path) if method == "POST" else None
        if m is None:
            return 403, _message(f"{method} {url.path}: not an endpoint the fence gate serves")
        if not self.owns(m["ref"]):
            return 403, _message(f"container {m['ref']} is not a node of run {self.run_id}")
        return self.engine.forward(method, url.path)

    # ------------------------------------------------------------ serving
    def start(self) -> None:
        gate = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self):
                try:
                    status, body = gate.handle(self.command, self.path)
                except Exception as e:          # the engine is unreachable: the fencing failed
                    status, body = 502, _message(f"fence gate: {type(e).__name__}: {e}")
                gate.log.add(client=self.client_address[0], method=self.command, path=self.path, status=status)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _serve

            def do_PUT(self):
                self._serve()

            do_DELETE = do_HEAD = do_PATCH = do_PUT

            def log_message(self, *args):      # the gate log records requests
                pass

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.certs.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(self.certs.server), str(self.certs.server_key))
        server = ThreadingHTTPServer((self.bind_ip, self.port), Handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"fence-gate-{self.run_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def _message(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


# ---------------------------------------------------------------- per-run certificates

@dataclass(frozen=True)
class Certs:
    dir: Path

    ca = property(lambda self: self.dir / "ca.pem")
    server = property(lambda self: self.dir / "server.pem")
    server_key = property(lambda self: self.dir / "server-key.pem")
    client = property(lambda self: self.dir / "client.pem")
    client_key = property(lambda self: self.dir / "client-key.pem")


def make_certs(directory: Path, run_id: str, server_ip: str, days: int = 7) -> Certs:
    """A CA of this run alone, a server certificate for the gate's address and one client
    certificate for the nodes (openssl: no Python crypto dependency)."""
    directory.mkdir(parents=True, exist_ok=True)
    c = Certs(directory)

    def openssl(*args: str, stdin: str | None = None) -> None:
        subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True, text=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj",
            f"/CN=ha-harness fence CA {run_id}", "-keyout", str(directory / "ca-key.pem"), "-out", str(c.ca))
    for name, subj, ext in (("server", f"/CN=fence-gate-{run_id}", f"subjectAltName=IP:{server_ip}\n"
                                                                      "extendedKeyUsage=serverAuth\n"),
                            ("client", f"/CN=fence-client-{run_id}", "extendedKeyUsage=clientAuth\n")):
        key, csr, cert = directory / f"{name}-key.pem", directory / f"{name}.csr", directory / f"{name}.pem"
        extfile = directory / f"{name}.ext"
        extfile.write_text(ext)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", str(key), "-out", str(csr))
        openssl("x509", "-req", "-in", str(csr), "-CA", str(c.ca), "-CAkey", str(directory / "ca-key.pem"),
                "-CAcreateserial", "-days", str(days), "-extfile", str(extfile), "-out", str(cert))
    for p in directory.iterdir():
        p.chmod(0o600)
    return c


# ---------------------------------------------------------------- the gate as a process of its own
# It must outlive the command that brought the run up (a kept cluster still fences), and go
# with the run: `down`/gc stop it.

def gate_dir(run_id: str) -> Path:
    return GATE_DIR / run_id


def _pid(run_id: str) -> int | None:
    try:
        pid = int((gate_dir(run_id) / "pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if run_id.encode() in cmdline else None


def ensure_gate(run_id: str, gateway: str, timeout: float = 15, engine: str = "docker") -> Certs:
    """The run's gate, started if it is not running; returns its certificates."""
    d = gate_dir(run_id)
    certs = Certs(d)
    if _pid(run_id) is not None:
        return certs
    _end_gates(run_id)          # a gate whose pid file is gone still holds the port
    if not certs.client.exists():
        make_certs(d, run_id, gateway)
    with (d / "gate.log").open("a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness.backends.fencegate", run_id, gateway, str(d), engine],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    (d / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            socket.create_connection((gateway, PORT), timeout=1).close()
            if proc.poll() is None:         # the answer came from this gate, not a leftover
                return certs
        except OSError:
            time.sleep(0.2)
    tail = (d / "gate.log").read_text()[-400:].strip()
    raise RuntimeError(f"fence gate of run {run_id} did not start on {gateway}:{PORT}: {tail or 'no output'}")


def stop_gate(run_id: str) -> bool:
    """Stop the run's gate and forget its certificates; True if one was running."""
    stopped = _end_gates(run_id)
    shutil.rmtree(gate_dir(run_id), ignore_errors=True)
    return stopped


def _gate_processes(run_id: str) -> list[int]:
    return processes(lambda argv: b"harness.backends.fencegate" in argv and run_id.encode() in argv)


def _end_gates(run_id: str) -> bool:
    """Stop every gate process of the run (its pid file may be gone); True if there was one."""
    pids = _gate_processes(run_id)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            _reap(pid)
    return bool(pids)


def _reap(pid: int, grace_s: float = 5) -> None:
    """Until the gate is gone, killed if SIGTERM did not end it within `grace_s`: a gate left
    running keeps its port, and the next gate of the run (a re-provision) cannot bind it
    while ensure_gate would take the old one's answer for the new one's (seen on VMs)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if process_gone(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def out_of_service_flag(run_id: str) -> Path:
    return gate_dir(run_id) / "out-of-service"


def set_out_of_service(run_id: str, broken: bool) -> None:
    """The fence device fails (every request 503) or works again; the gate keeps running."""
    flag = out_of_service_flag(run_id)
    if broken:
        flag.touch()
    else:
        flag.unlink(missing_ok=True)


def requests_since(run_id: str, t: float) -> list[dict]:
    """The gate's request log (from its own process) since epoch `t`."""
    try:
        lines = (gate_dir(run_id) / "requests.jsonl").read_text().splitlines()
    except OSError:
        return []
    return [e for e in map(json.loads, lines) if e["t"] >= t]


def gate_request(method: str, path: str, nodes: dict[str, str]) -> str:
    """'restart node2', 'inspect node2', 'list' for a request fence_docker made of the gate
    (`nodes`: container or domain name -> node name)."""
    parts = path.split("?")[0].strip("/").split("/")     # [v1.41,] containers, REF|json, ACTION
    if parts and parts[0].startswith("v"):
        parts = parts[1:]
    if parts[:2] == ["containers", "json"]:
        return "list"
    if len(parts) == 3 and parts[0] == "containers":
        ref, action = parts[1], parts[2]
        return f"{'inspect' if method == 'GET' and action == 'json' else action} {nodes.get(ref, ref)}"
    return f"{method} {path}"


def fence_events(run_id: str, since_wall: float, until_wall: float, nodes: dict[str, str]) -> list[tuple[float, str]]:
    """(epoch, what) of every power action the run's gate passed on, and of every request it
    refused: a broken device fails the agent's first query (list or inspect), before it ever
    tries a power action."""
    out = []
    for e in requests_since(run_id, since_wall):
        refused = e["status"] >= 300
        if e["t"] > until_wall or (e["method"] != "POST" and not refused):
            continue
        verdict = f"REFUSED (HTTP {e['status']})" if refused else "done"
        out.append((e["t"], f"fence device: {gate_request(e['method'], e['path'], nodes)} {verdict}"))
    return out


class GateFencing:
    """A backend's fencing through the run's gate (mixin): fence_docker in the nodes, the
    gate on the host side of the run's network. The backend says where the gate listens,
    which engine it speaks to, the API version to announce and each node's power name."""
    FENCE_DIR = "/etc/ha-harness/fence"
    gate_engine = "docker"

    def gate_address(self) -> str: ...

    def gate_api_version(self) -> str: ...

    def power_name(self, node: str) -> str: ...

    def fence_device(self) -> tuple[str, dict]:
        """fence_docker in the nodes, through this run's gate (started here if needed; the
        nodes get its CA and client certificate)."""
        address = self.gate_address()
        certs = ensure_gate(self.run_id, address, engine=self.gate_engine)
        for node in self.topology.nodes:
            for path in (certs.ca, certs.client, certs.client_key):
                self.copy(node.name, path.read_bytes(), f"{self.FENCE_DIR}/{path.name}", mode=0o600)
        host_map = ";".join(f"{n.name}:{self.power_name(n.name)}" for n in self.topology.nodes)
        return "stonith:fence_docker", {
            "ip": address, "ipport": str(PORT), "ssl_secure": "1", "api_version": self.gate_api_version(),
            "tlscacert": f"{self.FENCE_DIR}/{certs.ca.name}", "tlscert": f"{self.FENCE_DIR}/{certs.client.name}",
            "tlskey": f"{self.FENCE_DIR}/{certs.client_key.name}", "pcmk_host_map": host_map}

    def fence_device_broken(self, broken: bool) -> None:
        set_out_of_service(self.run_id, broken)

    def fence_events(self, since_wall: float, until_wall: float) -> list[tuple[float, str]]:
        return fence_events(self.run_id, since_wall, until_wall,
                            {self.power_name(n.name): n.name for n in self.topology.nodes})


def main(argv: list[str]) -> None:
    run_id, gateway, directory, kind = (*argv, "docker")[:4]
    from ..labels import PREFIX
    gate = FenceGate(run_id, gateway, Certs(Path(directory)), log_path=Path(directory) / "requests.jsonl",
                     out_of_service=out_of_service_flag(run_id),
                     engine=LibvirtEngine(PREFIX) if kind == "libvirt" else DockerEngine())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    with gate:
        print(f"fence gate of run {run_id} on {gateway}:{PORT}", flush=True)
        while not stop.wait(1.0):      # wake up now and then: a signal is always seen
            pass


if __name__ == "__main__":
    main(sys.argv[1:])
