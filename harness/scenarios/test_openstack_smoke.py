"""The OpenStack control plane through the VIP with openstacksdk: it works, and it
still works after every resource moved to the other node."""
import uuid
from datetime import datetime, timezone

import pytest
from openstack import exceptions as os_exc

from harness.cluster import poll

pytestmark = [pytest.mark.cluster, pytest.mark.openstack]


def smoke(conn) -> dict:
    """Token, image upload, server boot (fake driver), volume, resource providers."""
    tag = uuid.uuid4().hex[:6]
    token = conn.authorize()
    assert token
    image = conn.image.create_image(name=f"smoke-{tag}", data=b"\0" * 4096, disk_format="raw",
                                    container_format="bare", allow_duplicates=True)
    image = conn.image.get_image(image.id)
    assert image.status == "active", image.status
    flavor = conn.compute.find_flavor("harness.tiny") or conn.compute.create_flavor(
        name="harness.tiny", ram=64, vcpus=1, disk=1)
    server = conn.compute.create_server(name=f"smoke-{tag}", image_id=image.id, flavor_id=flavor.id,
                                        networks="none")
    volume = conn.block_storage.create_volume(name=f"smoke-{tag}", size=1)
    try:
        server = wait_active(conn, server)
        volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=180)
        providers = list(conn.placement.resource_providers())
        assert providers, "placement has no resource provider: nova-compute did not report"
        found = {"server_host": server.compute_host, "volume_host": volume.host,
                 "providers": [p.name for p in providers]}
    finally:
        conn.compute.delete_server(server, ignore_missing=True)
        conn.block_storage.delete_volume(volume, ignore_missing=True)
        conn.image.delete_image(image, ignore_missing=True)
    # awaited: a scenario leaves no half-done work to the services the next one moves
    conn.compute.wait_for_delete(server, wait=120)
    conn.block_storage.wait_for_delete(volume, wait=120)
    return found


def wait_active(conn, server):
    """The server ACTIVE; if it went to ERROR, fail with Nova's own reason (its fault)."""
    try:
        return conn.compute.wait_for_server(server, status="ACTIVE", wait=180)
    except os_exc.ResourceFailure:
        fault = conn.compute.get_server(server.id).fault or {}
        pytest.fail(f"server {server.id} went to ERROR on host {fault.get('host', '?')}: "
                    f"{fault.get('message', 'no fault recorded')} {(fault.get('details') or '')[-600:]}")


def wait_compute_restarted(conn, after: datetime, timeout: float = 300) -> None:
    """Until nova-compute heartbeats from its new node: before that, the service record
    still shows the old process's last beat, and a boot lands on a compute service whose
    resource tracker is not ready (seen on os-aa-3node: the server went to ERROR)."""
    def fresh():
        svcs = [s for s in conn.compute.services() if s.binary == "nova-compute"]
        beats = [(s.host, s.state, s.updated_at) for s in svcs]
        return bool(svcs) and all(s.state == "up" and s.updated_at and
                                  datetime.fromisoformat(s.updated_at) > after for s in svcs), beats
    poll(fresh, timeout, interval=3, what="nova-compute heartbeat after the move")


def test_control_plane_answers_through_the_vip(cloud):
    found = smoke(cloud)
    assert found["server_host"] == "harness-compute"
    assert found["volume_host"].startswith("harness-volume")


def test_control_plane_survives_moving_every_resource(cloud, cluster, cluster_run, scenario):
    holder = cluster.vip_holder()
    with scenario.nemesis.node(holder).standby():
        def moved():
            s = cluster.state()
            placed = {rid: s.where(rid) for rid in s.resources}
            # every resource (every clone instance still wanted) runs, and none on the old node
            return all(nodes and holder not in nodes for nodes in placed.values()), placed
        poll(moved, 600, interval=2, what=f"every resource off {holder}")
        cluster.wait_settled(timeout=300)    # the smoke judges the state after Pacemaker is done
        assert cluster.vip_holder() not in (None, holder)
        # A new client, as after a real failover: on os-aa-2node a keep-alive connection
        # that HAProxy on the old node had accepted failed the first POST after the move
        # (RemoteDisconnected); what clients see during a move is the probes' business.
        moved_at = datetime.now(timezone.utc).replace(tzinfo=None)    # nova's timestamps: naive UTC
        conn = cluster_run.provisioner.control_plane.connect()
        try:
            wait_compute_restarted(conn, moved_at)
            smoke(conn)
        finally:
            conn.close()
    # The control plane works after the move; a daemon that died on its new node on the way
    # is still a finding (seen on os-aa-3node: nova-compute exited once after a 60 s RPC
    # MessagingTimeout, once after neutron answered 503 while HAProxy still sent the DB to
    # the old Galera writer). Reported, not hidden: the audit would count it twice.
    failed = cluster.state().failures
    if failed:
        scenario.expected_failures |= {f.resource for f in failed}
        pytest.xfail("finding: after the move " + "; ".join(
            f"{f.resource} {f.op} on {f.node} failed (rc={f.exitcode}{' ' + f.exitreason if f.exitreason else ''})"
            for f in failed)
            + "; Pacemaker restarted it")
