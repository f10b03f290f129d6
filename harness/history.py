"""The run history: an append-only, timestamped record of samples and events.

Every figure in a report is computed from it. `t` is seconds on the monotonic
clock since the history started (for arithmetic); `wall` is Unix time (for people).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path


class History:
    def __init__(self, name: str = "history", meta: dict | None = None):
        self.name = name
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._events: list[dict] = []
        self.t0_mono = time.monotonic()
        self.t0_wall = time.time()
        self.meta.setdefault("t0_wall", self.t0_wall)

    def now(self) -> float:
        return time.monotonic() - self.t0_mono

    def wall(self, t: float) -> float:
        return self.t0_wall + t

    def record(self, kind: str, t: float | None = None, **fields) -> dict:
        t = self.now() if t is None else t
        event = {"kind": kind, "t": round(t, 4), "wall": round(self.wall(t), 4), **fields}
        with self._lock:
            self._events.append(event)
        return event

    def events(self, kind: str | None = None, **match) -> list[dict]:
        with self._lock:
            events = list(self._events)
        return sorted((e for e in events if (kind is None or e["kind"] == kind)
                       and all(e.get(k) == v for k, v in match.items())), key=lambda e: e["t"])

    def samples(self, probe: str) -> list[dict]:
        return self.events("sample", probe=probe)

    def probes(self) -> list[str]:
        return sorted({e["probe"] for e in self.events("sample")})

    def fault_windows(self) -> list[dict]:
        """[{"id", "fault", "target", "start", "applied", "heal", "end"}] from fault events
        (start/applied bracket the action, heal/end bracket the heal; None if it never happened)."""
        windows = {}
        for e in self.events("fault"):
            w = windows.setdefault(e["id"], {"id": e["id"], "fault": e["fault"], "target": e.get("target"),
                                             "start": None, "applied": None, "heal": None, "end": None})
            w[e["phase"]] = e["t"]
        return sorted(windows.values(), key=lambda w: w["start"] or 0)

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            f.write(json.dumps({"kind": "meta", "name": self.name, **self.meta}) + "\n")
            for e in self.events():
                f.write(json.dumps(e) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "History":
        lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
        meta = lines[0] if lines and lines[0]["kind"] == "meta" else {"kind": "meta", "name": Path(path).stem}
        h = cls(meta.get("name", "history"), {k: v for k, v in meta.items() if k not in ("kind", "name")})
        h.t0_wall = meta.get("t0_wall", h.t0_wall)
        h._events = [e for e in lines if e["kind"] != "meta"]
        return h
