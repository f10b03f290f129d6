"""The measurement itself, checked against ground truth."""
import time

import pytest

pytestmark = pytest.mark.cluster

BLOCK_S = 5.0
TOLERANCE_S = 0.3      # exec latency of the iptables insert/delete in the node


def test_measured_downtime_equals_known_port_block(scenario, cluster):
    holder = cluster.vip_holder()
    port = cluster.topology.http_checks[0].port
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.block_port(holder, port) as fault:
        time.sleep(BLOCK_S)
    assert scenario.wait_recovered(since=fault.healed_at)
    result = scenario.analyse(fault)
    measured = result["downtime"]["http:web"]["downtime_s"]
    blocked = fault.healed_at - fault.started_at
    print(f"blocked {blocked:.3f}s, measured {measured:.3f}s, interval {scenario.interval}s")
    assert abs(measured - blocked) <= scenario.interval + TOLERANCE_S
    assert cluster.vip_holder() == holder      # a blocked port is invisible to Pacemaker
