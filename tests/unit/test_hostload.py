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
