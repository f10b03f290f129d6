"""The fence gate against the real engine, used by the real fence_docker from inside a node:
a run can power-cycle its own nodes and nothing else, and no other Docker endpoint passes."""
import ipaddress
import secrets

import pytest

from harness.backends import dockerimages as images
from harness.backends.docker import client, free_subnets
from harness.backends.fencegate import PORT, FenceGate, make_certs
from harness.labels import RUN_LABEL

API = "1.41"


@pytest.fixture(scope="module")
def docker_cli():
    cli = client()
    yield cli
    cli.close()


@pytest.fixture(scope="module")
def two_runs(docker_cli, tmp_path_factory):
    """Run A: nodes a1 (where fence_docker runs) and a2 (its target); run B: b1, on A's network."""
    image = images.ensure_images(docker_cli, layers=("cluster",))[-1].tag
    tag = secrets.token_hex(3)
    run_a, run_b = f"gate-a-{tag}", f"gate-b-{tag}"
    subnet = next(iter(free_subnets(docker_cli, "10.213.240.0/24")))
    gateway = str(ipaddress.ip_network(subnet).network_address + 1)
    ipam = {"Driver": "default", "Config": [{"Subnet": subnet, "Gateway": gateway}]}
    net = docker_cli.api.create_network(f"ha-harness-{run_a}", driver="bridge", internal=True, ipam=ipam,
                                        labels={RUN_LABEL: run_a})["Id"]
    containers = {}
    try:
        for name, run in (("a1", run_a), ("a2", run_a), ("b1", run_b)):
            containers[name] = docker_cli.containers.run(
                image, ["sleep", "infinity"], name=f"ha-harness-{run}-{name}", detach=True,
                network=f"ha-harness-{run_a}", labels={RUN_LABEL: run}, entrypoint=[])
        certs = make_certs(tmp_path_factory.mktemp("certs"), run_a, gateway)
        for kind in ("ca", "client", "client_key"):
            path = getattr(certs, kind)
            _put(containers["a1"], f"/etc/fence/{path.name}", path.read_bytes())
        with FenceGate(run_a, gateway, certs) as gate:
            yield {"gate": gate, "gateway": gateway, "c": containers, "run_a": run_a, "run_b": run_b}
    finally:
        for c in containers.values():
            c.remove(force=True)
        docker_cli.api.remove_network(net)


def _put(container, dest, content: bytes):
    import io
    import os
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(dest))
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    container.exec_run(["mkdir", "-p", os.path.dirname(dest)])
    assert container.put_archive(os.path.dirname(dest), buf.getvalue())


def fence(env, *args) -> tuple[int, str]:
    gw = env["gateway"]
    rc, out = env["c"]["a1"].exec_run(
        ["fence_docker", "--ip", gw, "--ipport", str(PORT), "--ssl-secure", "--api-version", API,
         "--tlscert", "/etc/fence/client.pem", "--tlskey", "/etc/fence/client-key.pem",
         "--tlscacert", "/etc/fence/ca.pem", *args])
    return rc, out.decode(errors="replace")


def curl(env, path, method="GET", cert=True) -> str:
    auth = ["--cert", "/etc/fence/client.pem", "--key", "/etc/fence/client-key.pem"] if cert else []
    rc, out = env["c"]["a1"].exec_run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "--cacert", "/etc/fence/ca.pem",
         *auth, f"https://{env['gateway']}:{PORT}{path}"])
    return out.decode()


def test_the_list_holds_only_the_runs_own_nodes(two_runs):
    rc, out = fence(two_runs, "--action", "list")
    assert rc == 0, out
    names = {line.split(",")[1] for line in out.split() if "," in line}
    assert names == {f"ha-harness-{two_runs['run_a']}-a1", f"ha-harness-{two_runs['run_a']}-a2"}, out


def test_a_node_of_the_run_is_power_cycled(two_runs):
    target = two_runs["c"]["a2"]
    started = (target.reload(), target.attrs["State"]["StartedAt"])[1]
    rc, out = fence(two_runs, "--plug", target.name, "--action", "reboot")
    assert rc == 0, out
    target.reload()
    assert target.attrs["State"]["Running"] and target.attrs["State"]["StartedAt"] != started
    # fence_docker's default method (onoff): a kill, then a start, both passed by the gate
    passed = [e["path"].rsplit("/", 1)[-1] for e in two_runs["gate"].log.entries
              if e["method"] == "POST" and f"/containers/{target.name}/" in e["path"] and e["status"] == 204]
    assert passed == ["kill", "start"], two_runs["gate"].log.entries


def test_another_runs_container_is_refused(two_runs):
    other = two_runs["c"]["b1"]
    rc, out = fence(two_runs, "--plug", other.name, "--action", "off")
    assert rc != 0, out
    other.reload()
    assert other.attrs["State"]["Running"]
    assert curl(two_runs, f"/v{API}/containers/{other.name}/json") == "403"
    assert curl(two_runs, f"/v{API}/containers/{other.id}/kill", "POST") == "403"


def test_every_other_endpoint_is_refused(two_runs):
    for path, method in ((f"/v{API}/images/json", "GET"), (f"/v{API}/info", "GET"),
                         (f"/v{API}/containers/create", "POST"), ("/_ping", "GET"),
                         (f"/v{API}/containers/{two_runs['c']['a2'].name}", "DELETE"),
                         (f"/v{API}/containers/{two_runs['c']['a2'].name}/exec", "POST")):
        assert curl(two_runs, path, method) == "403", (method, path)


def test_no_client_certificate_no_answer(two_runs):
    assert curl(two_runs, f"/v{API}/containers/json", cert=False) == "000"
