"""The evacuation watcher: polls Nova (and Masakari, when the cloud has it) through the VIP
during a scenario and records what they say into the History as evacuation events
(harness.evacuation). It only reads; the recovery machinery under test does the work.

Every poll is bounded (the connection's api_timeout) and a failed poll is recorded as a
`watch` sample, so a gap in the instance timeline during a control-plane outage shows as
what it was: the API did not answer.
"""
from __future__ import annotations

import threading
import time

from .cluster import poll
from .evacuation import Recorder, _epoch

# Masakari's notification states -> our stages (the first time each is seen)
NOTIFICATION_STAGES = {"new": "notification sent", "running": "notification running",
                       "finished": "notification finished", "failed": "notification finished"}


class EvacuationWatcher:
    """One thread; every `interval` seconds: the tracked servers, their evacuation
    migrations, the compute services of the watched hosts, Masakari's notifications."""

    def __init__(self, connect, history, ids: dict[str, str], hosts: list[str], interval: float = 2.0):
        if interval <= 0:
            raise ValueError(f"evacuation watcher: interval must be > 0, got {interval}")
        self.connect = connect          # () -> openstack.connection.Connection
        self.history = history
        self.rec = Recorder(history)
        self.ids = dict(ids)            # instance id -> name
        self.hosts = list(hosts)        # compute hosts whose service state we follow
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[tuple] = set()  # (stage, host, id, notification) already recorded

    # ---------------------------------------------------------------- one poll
    def poll(self, conn) -> None:
        t = self.history.now()
        started = time.monotonic()
        try:
            migrations = self._migrations(conn)
            for s in conn.compute.servers(details=True, all_projects=True):
                if s.id in self.ids:
                    self.rec.server(s.id, s.name, s.status, s.compute_host, s.task_state,
                                    migrations.get(s.id), t=t, power_state=s.power_state,
                                    updated=s.updated_at)
            self._services(conn, t)
            self._notifications(conn, t)
            ok, error = True, None
        except Exception as e:          # the API is part of what fails: record, keep polling
            ok, error = False, f"{type(e).__name__}: {str(e)[:160]}"
        self.history.record("sample", t=t, probe="evacuation-watch", ok=ok, error=error,
                            duration=round(time.monotonic() - started, 4), detail="")

    @staticmethod
    def _migrations(conn) -> dict[str, str]:
        """instance id -> status of its newest evacuation migration."""
        newest: dict[str, tuple] = {}
        for m in conn.compute.migrations(migration_type="evacuation"):
            key = (m.created_at or "", m.id or 0)
            if m.server_id not in newest or key > newest[m.server_id][0]:
                newest[m.server_id] = (key, m.status)
        return {sid: status for sid, (_, status) in newest.items()}

    def _services(self, conn, t: float) -> None:
        for svc in conn.compute.services(binary="nova-compute"):
            if svc.host not in self.hosts:
                continue
            if svc.status == "disabled":
                self._stage_once("service disabled", svc.host, None, t)
            if svc.is_forced_down:
                self._stage_once("service forced down", svc.host, None, t)

    def _notifications(self, conn, t: float) -> None:
        """Masakari's own timestamps (host clock, shared by the containers) place a
        notification's stages; a poll's time would be late by the poll's duration, which is
        long exactly when the control plane fails over."""
        if not conn.has_service("instance-ha"):
            return
        ha = conn.instance_ha
        # a notification names its host by Masakari's uuid for it (source_host_uuid)
        names = {h.uuid: h.name for seg in ha.segments() for h in ha.hosts(seg.uuid)}
        for n in ha.notifications():
            host = names.get(n.source_host_uuid, n.hostname)
            uuid = n.notification_uuid
            # generated: when hostmonitor saw the node offline; sent: when the API accepted it
            self._stage_once("notification generated", host, None, self._at(n.generated_time, t),
                             notification=uuid)
            self._stage_once("notification sent", host, None, self._at(n.created_at, t), notification=uuid)
            stage = NOTIFICATION_STAGES.get((n.status or "").lower())
            if stage and stage != "notification sent":
                self._stage_once(stage, host, None, self._at(n.updated_at, t), notification=uuid,
                                 status=n.status)

    def _at(self, stamp: str | None, fallback: float) -> float:
        """An API timestamp (UTC, ISO 8601) on the history's clock."""
        return round(_epoch(stamp) - self.history.t0_wall, 4) if stamp else fallback

    def _stage_once(self, stage: str, host: str | None, iid: str | None, t: float, **detail) -> None:
        key = (stage, host, iid, detail.get("notification"))    # one per notification
        if key not in self._seen:
            self._seen.add(key)
            self.rec.stage(stage, host=host, id=iid, t=t, **detail)

    def wait_polls(self, count: int, timeout: float = 120) -> None:
        """Until `count` polls that started from now on are recorded (answered or not): what
        the watcher saw at a moment, before a fault or after a recovery."""
        since = self.history.now()

        def done():
            n = len([e for e in self.history.samples("evacuation-watch") if e["t"] >= since])
            return n >= count, f"{n} polls"
        poll(done, timeout, interval=0.2, what=f"{count} evacuation-watch polls")

    # ---------------------------------------------------------------- thread
    def _loop(self) -> None:
        conn = self.connect()
        try:
            next_at = time.monotonic()
            while not self._stop.is_set():
                self.poll(conn)
                next_at += self.interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            conn.close()

    def start(self) -> "EvacuationWatcher":
        self._thread = threading.Thread(target=self._loop, name="evacuation-watch", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=90)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
