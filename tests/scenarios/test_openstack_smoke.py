"""The OpenStack control plane through the VIP with openstacksdk: it works, and it
still works after every resource moved to the other node."""
import uuid

import pytest

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
        server = conn.compute.wait_for_server(server, status="ACTIVE", wait=180)
        volume = conn.block_storage.wait_for_status(volume, status="available", failures=["error"], wait=180)
        providers = list(conn.placement.resource_providers())
        assert providers, "placement has no resource provider: nova-compute did not report"
        return {"server_host": server.compute_host, "volume_host": volume.host,
                "providers": [p.name for p in providers]}
    finally:
        # deletions are requested, not awaited: they are not what this scenario proves
        conn.compute.delete_server(server, ignore_missing=True)
        conn.block_storage.delete_volume(volume, ignore_missing=True)
        conn.image.delete_image(image, ignore_missing=True)


def test_control_plane_answers_through_the_vip(cloud):
    found = smoke(cloud)
    assert found["server_host"] == "harness-compute"
    assert found["volume_host"].startswith("harness-volume")


def test_control_plane_survives_moving_every_resource(cloud, cluster, cluster_run, scenario):
    holder = cluster.vip_holder()
    other = next(n for n in cluster.node_names if n != holder)
    with scenario.nemesis.node(holder).standby():
        def moved():
            s = cluster.state()
            placed = {rid: s.where(rid) for rid in s.resources}
            return all(nodes == [other] for nodes in placed.values()), placed
        poll(moved, 600, interval=2, what=f"every resource on {other}")
        assert cluster.vip_holder() == other
        # A new client, as after a real failover: on os-aa-2node a keep-alive connection
        # that HAProxy on the old node had accepted failed the first POST after the move
        # (RemoteDisconnected); what clients see during a move is the probes' business.
        conn = cluster_run.provisioner.control_plane.connect()
        try:
            smoke(conn)
        finally:
            conn.close()
