"""The project's own OCF agent (ocf:harness:openstack-api), exercised in a real node.

It runs on a node that does not hold the VIP, against a throw-away unit, so the
cluster under test is not disturbed (Pacemaker never manages that unit)."""
import pytest

pytestmark = pytest.mark.cluster

AGENT = "/usr/lib/ocf/resource.d/harness/openstack-api"
UNIT = "harness-ra-test.service"
PORT = 8089
UNIT_FILE = f"""[Unit]
Description=ha-harness OCF agent test target
[Service]
ExecStart=/usr/bin/python3 -m http.server {PORT} --bind 127.0.0.1
"""


@pytest.fixture
def node(cluster):
    node = next(n for n in cluster.node_names if n != cluster.vip_holder())
    cluster.backend.copy(node, UNIT_FILE.encode(), f"/etc/systemd/system/{UNIT}")
    cluster.backend.exec(node, "systemctl daemon-reload")
    yield node
    cluster.backend.exec(node, f"systemctl kill -s CONT {UNIT}; systemctl stop {UNIT}; "
                               f"rm -f /etc/systemd/system/{UNIT}; systemctl daemon-reload", check=False)


def agent(cluster, node, action: str, url: str = f"http://127.0.0.1:{PORT}/"):
    env = f"OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=ratest OCF_RESKEY_unit={UNIT} " \
          f"OCF_RESKEY_check_url={url} OCF_RESKEY_check_timeout=2"
    return cluster.backend.exec(node, f"env {env} {AGENT} {action}", timeout=90, check=False)


def test_agent_passes_ocf_tester(cluster, node):
    r = cluster.backend.exec(
        node, f"ocf-tester -n ratest -o unit={UNIT} -o check_url=http://127.0.0.1:{PORT}/ {AGENT}",
        timeout=300, check=False)
    assert r.rc == 0 and "passed all tests" in r.out, r.out + r.err


def test_monitor_fails_when_api_is_dead_but_process_alive(cluster, hosts, node):
    assert agent(cluster, node, "start").rc == 0
    assert agent(cluster, node, "monitor").rc == 0
    assert hosts[node].service(UNIT).is_running
    # freeze every process of the unit: the PID is alive, the API does not answer
    cluster.backend.exec(node, f"systemctl kill -s STOP {UNIT}")
    pid = int(hosts[node].service(UNIT).systemd_properties["MainPID"])
    assert hosts[node].process.get(pid=pid).state.startswith("T")       # stopped, not gone
    hung = agent(cluster, node, "monitor")
    assert hung.rc == 1, (hung.rc, hung.out, hung.err)          # OCF_ERR_GENERIC, not "running"
    assert "does not answer" in hung.err + hung.out
    cluster.backend.exec(node, f"systemctl kill -s CONT {UNIT}")
    assert agent(cluster, node, "monitor").rc == 0
    assert agent(cluster, node, "stop").rc == 0
    assert not hosts[node].service(UNIT).is_running
    assert agent(cluster, node, "monitor").rc == 7                # OCF_NOT_RUNNING


def test_validate_all_rejects_missing_unit(cluster, node):
    r = cluster.backend.exec(node, f"env OCF_ROOT=/usr/lib/ocf OCF_RESKEY_unit=no-such.service {AGENT} validate-all",
                             check=False)
    assert r.rc == 5, (r.rc, r.err)                                # OCF_ERR_INSTALLED
