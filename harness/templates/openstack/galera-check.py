#!/usr/bin/python3
"""ha-harness: this Galera node's health over HTTP on port 9200 for HAProxy (the OpenStack HA
guide's clustercheck): 200 when the node is Synced (wsrep_local_state 4) and ready, else 503.
A node that accepts TCP may still refuse every query ("WSREP has not yet prepared node for
application use"), which a plain connect check cannot see. One long-running process whose
answer is at most half a second old: every HAProxy checks every node each second, and a
process per check would cost this small machine real CPU."""
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUERY = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state', 'wsrep_ready')"
MAX_AGE = 0.5
_lock, _cached = threading.Lock(), [0.0, False]


def synced() -> bool:
    with _lock:
        if time.monotonic() - _cached[0] > MAX_AGE:
            try:
                out = subprocess.run(["mysql", "--connect-timeout=2", "-N", "-B", "-e", QUERY],
                                     capture_output=True, text=True, timeout=3).stdout
                status = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
                ok = status.get("wsrep_local_state") == "4" and status.get("wsrep_ready") == "ON"
            except (OSError, subprocess.TimeoutExpired):
                ok = False
            _cached[:] = [time.monotonic(), ok]
        return _cached[1]


class Check(BaseHTTPRequestHandler):
    def do_GET(self):
        ok = synced()
        body = b"synced\n" if ok else b"not synced\n"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):      # one line per check would flood the journal
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("", 9200), Check).serve_forever()
