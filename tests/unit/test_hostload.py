"""The host CPU sampler and what the analysis says about it (pure: files and lists)."""
from harness import checkers
from harness.history import History
from harness.probes import HostSampler, read_cpu_times


def stat(tmp_path, user, system, idle, iowait=0):
    p = tmp_path / "stat"
    p.write_text(f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4\n")
    return p


def test_cpu_times_count_iowait_as_idle(tmp_path):
    assert read_cpu_times(str(stat(tmp_path, 100, 50, 800, 50))) == (150, 1000)


def test_sampler_records_the_busy_share_since_its_last_sample(tmp_path):
    s = stat(tmp_path, 100, 0, 900)
    (tmp_path / "loadavg").write_text("3.50 2.00 1.00 2/300 42\n")
    sampler = HostSampler(stat=str(s), loadavg=str(tmp_path / "loadavg"))
    stat(tmp_path, 190, 0, 910)          # +90 busy of +100: 90 %
    h = History("t", {})
    sampler._sample(h)
    (e,) = h.events("host")
    assert e["busy"] == 0.9 and e["load1"] == 3.5 and e["cpus"] >= 1


def test_failed_samples_during_saturation_are_counted_not_excused():
    host = [{"t": t, "busy": b, "load1": 4.0, "cpus": 2} for t, b in ((10, 0.5), (11, 0.99), (12, 0.98), (13, 0.4))]
    failed = [{"t": 10.5, "duration": 2.0, "ok": False}, {"t": 12.9, "duration": 0.05, "ok": False},
              {"t": 30.0, "duration": 1.0, "ok": False}]
    got = checkers.host_load(host, failed, start=9.0)
    assert got == {"busy_max": 0.99, "busy_mean": 0.717, "load1_max": 4.0, "cpus": 2, "saturated_s": 2,
                   "failed_samples": 3, "failed_while_saturated": 1}


def test_no_host_samples_no_figure():
    assert checkers.host_load([], [{"t": 1.0, "ok": False}], start=0.0) is None


def result(errors: dict, failed_while_saturated: int, failed: int = 3):
    return {"downtime": {"os:keystone-login": {"failures": 2, "errors": errors},
                         "os:glance": {"failures": 1, "errors": {"Timeout": 1}},
                         "http:nova": {"failures": 0, "errors": {}}},
            "host": {"cpus": 2, "busy_max": 1.0, "saturated_s": 4, "failed_samples": failed,
                     "failed_while_saturated": failed_while_saturated}}


def test_timeouts_all_during_saturation_are_the_hosts():
    why = checkers.only_saturation_timeouts(result({"Timeout": 2}, 3))
    assert why == ("every failed client sample (os:keystone-login 2, os:glance 1) was a timeout while the host's "
                   "2 cores were saturated (busy max 100%, 4 s at >= 95%)")


def test_an_error_or_a_timeout_with_cpu_to_spare_is_the_clusters():
    assert checkers.only_saturation_timeouts(result({"Timeout": 1, "HTTP503": 1}, 3)) is None
    assert checkers.only_saturation_timeouts(result({"Timeout": 2}, 2)) is None
    assert checkers.only_saturation_timeouts({**result({"Timeout": 2}, 3), "host": None}) is None
    no_failures = {"downtime": {"http:nova": {"failures": 0, "errors": {}}}, "host": result({}, 0, 0)["host"]}
    assert checkers.only_saturation_timeouts(no_failures) is None


def test_a_host_saturated_throughout_is_named_one_with_cpu_to_spare_is_not():
    def host(busy):
        return [{"t": i, "busy": b, "cpus": 2} for i, b in enumerate(busy)]
    assert checkers.saturated_throughout(host([1.0] * 19 + [0.5]), 0.9) == \
        "the host's 2 cores were saturated 19 of 20 s (busy mean 98%)"
    assert checkers.saturated_throughout(host([1.0] * 17 + [0.5] * 3), 0.9) is None
    assert checkers.saturated_throughout([], 0.9) is None
