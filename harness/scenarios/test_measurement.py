"""The measurement itself, checked against ground truth."""
import time

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.http_probe]

BLOCK_S = 5.0
TOLERANCE_S = 0.1      # scheduling jitter of the probe threads


def test_measured_downtime_equals_known_port_block(scenario, cluster):
    holder = cluster.vip_holder()
    check = cluster.topology.http_checks[0]
    scenario.start_probes()
    scenario.baseline()
    with scenario.nemesis.block_port(holder, check.port) as fault:
        time.sleep(BLOCK_S)
    assert scenario.wait_recovered(since=fault.healed_at)
    result = scenario.analyse(fault)
    measured = result["downtime"][f"http:{check.name}"]["downtime_s"]
    # The rule was in place at least from `applied` to `heal`, at most from `start` to `end`.
    shortest = fault.heal_requested_at - fault.applied_at
    longest = fault.healed_at - fault.started_at
    print(f"blocked between {shortest:.3f}s and {longest:.3f}s, measured {measured:.3f}s, "
          f"interval {scenario.interval}s")
    assert shortest - scenario.interval - TOLERANCE_S <= measured <= longest + scenario.interval + TOLERANCE_S
    assert cluster.vip_holder() == holder      # a blocked port is invisible to Pacemaker
