"""Instances for the evacuation scenarios: spread over the compute hosts before a fault,
and the compute hosts put back in service after it (Masakari leaves a recovered host
disabled in Nova and "on maintenance" in its segment, as it does in production: an
operator re-enables it; the harness does, so the next scenario starts whole).
"""
from __future__ import annotations

import time

from ..cluster import poll

FLAVOR = "harness.tiny"
PREFIX = "evac-"


def image_and_flavor(conn):
    image = conn.image.find_image(f"{PREFIX}image")
    if image is None:
        image = conn.image.create_image(name=f"{PREFIX}image", data=b"\0" * 4096, disk_format="raw",
                                        container_format="bare", allow_duplicates=True)
    flavor = conn.compute.find_flavor(FLAVOR) or conn.compute.create_flavor(
        name=FLAVOR, ram=64, vcpus=1, disk=1)
    return image, flavor


def spread(conn, hosts: list[str], per_host: int, tag: str, timeout: float = 300) -> dict[str, dict]:
    """`per_host` servers on each compute host (placed with the admin-only `nova:<host>` zone),
    all ACTIVE before it returns: id -> {"name", "host"}."""
    if per_host < 1:
        raise ValueError(f"instances per host must be >= 1, got {per_host}")
    image, flavor = image_and_flavor(conn)
    made = {}
    for host in hosts:
        for i in range(per_host):
            name = f"{PREFIX}{tag}-{host}-{i}"
            s = conn.compute.create_server(name=name, image_id=image.id, flavor_id=flavor.id,
                                           networks="none", availability_zone=f"nova:{host}")
            made[s.id] = {"name": name, "host": host}

    def all_active():
        states = {s.id: (s.status, s.compute_host) for s in conn.compute.servers(details=True)
                  if s.id in made}
        bad = {made[i]["name"]: st for i, st in states.items()
               if st[0] != "ACTIVE" or st[1] != made[i]["host"]}
        if any(st[0] == "ERROR" for st in bad.values()):
            raise RuntimeError(f"instances went to ERROR while spreading them: {bad}")
        return len(states) == len(made) and not bad, bad or "missing"
    poll(all_active, timeout, interval=2, what=f"{len(made)} instances ACTIVE on {', '.join(hosts)}")
    return made


def remove(conn, ids, timeout: float = 180) -> list[str]:
    """Delete the scenario's instances and wait until they are gone; returns the ones left."""
    for iid in ids:
        try:
            conn.compute.delete_server(iid, ignore_missing=True, force=True)
        except Exception:               # a server stuck on a dead host: the wait reports it
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [s.name for s in conn.compute.servers() if s.id in set(ids)]
        if not left:
            return []
        time.sleep(2)
    return left


def restore_hosts(conn, hosts: list[str], segment: str | None) -> list[str]:
    """Every compute host enabled, not forced down, and (with Masakari) out of maintenance.
    Returns what had to be changed, for the scenario's log."""
    changed = []
    for svc in conn.compute.services(binary="nova-compute"):
        if svc.host not in hosts:
            continue
        if svc.is_forced_down:
            conn.compute.update_service_forced_down(svc, svc.host, "nova-compute", forced=False)
            changed.append(f"{svc.host}: forced down -> up")
        if svc.status == "disabled":
            conn.compute.enable_service(svc, svc.host, "nova-compute")
            changed.append(f"{svc.host}: disabled -> enabled")
    if segment and conn.has_service("instance-ha"):
        ha = conn.instance_ha
        seg = next((s for s in ha.segments() if s.name == segment), None)
        for h in (ha.hosts(seg.uuid) if seg else []):
            if h.on_maintenance:
                ha.update_host(h.uuid, seg.uuid, on_maintenance=False)
                changed.append(f"{h.name}: out of Masakari maintenance")
    return changed


def wait_masakari_idle(conn, timeout: float = 300) -> list[str]:
    """Until Masakari works on no notification (none `new` or `running`). A notification can
    arrive late: one hostmonitor sent about a frozen node reached the API only when the node
    thawed, after its scenario had ended, and disabled that node's compute service under the
    next scenario. Returns the notifications that were still busy when the wait began."""
    if not conn.has_service("instance-ha"):
        return []

    def busy():
        return [f"{n.source_host_uuid} {n.status}" for n in conn.instance_ha.notifications()
                if (n.status or "").lower() in ("new", "running")]
    seen: list[list[str]] = []          # every answer; the first says what was busy at the start

    def idle():
        seen.append(busy())
        return not seen[-1], seen[-1]
    poll(answered(idle), timeout, interval=5, what="Masakari's notifications to end")
    return seen[0] if seen else []


def settle(conn, hosts: list[str], segment: str | None, timeout: float = 300) -> list[str]:
    """Masakari idle, then every compute host back in service: what a scenario needs before it
    starts, and leaves behind when it ends (the APIs may still be failing over: waited for).
    Returns what it found and changed."""
    found = [f"notification busy: {b}" for b in wait_masakari_idle(conn, timeout)]
    changed: list[str] = []
    poll(answered(lambda: (changed.extend(restore_hosts(conn, hosts, segment)) or True, "")), timeout,
         interval=5, what="compute hosts back in service")
    return found + changed


def answered(fn):
    """A poll condition that counts an API that does not answer (yet) as "not yet": these
    waits run across failovers."""
    def cond():
        try:
            return fn()
        except Exception as e:
            return False, f"{type(e).__name__}: {str(e)[:120]}"
    return cond


def wait_computes_up(conn, hosts: list[str], timeout: float = 240, enabled: bool = True) -> None:
    """Until Nova reports every host's compute service up, and enabled unless `enabled` is
    False (new instances and evacuations need both; a returned source only needs to be up to
    have had its chance to destroy what was evacuated away from it)."""
    @answered
    def up():
        st = {s.host: (s.state, s.status) for s in conn.compute.services(binary="nova-compute")
              if s.host in hosts}
        ok = len(st) == len(hosts) and all(
            state == "up" and (status == "enabled" or not enabled) for state, status in st.values())
        return ok, st
    what = "up and enabled" if enabled else "up"
    poll(up, timeout, interval=3, what=f"nova-compute {what} on {', '.join(hosts)}")
