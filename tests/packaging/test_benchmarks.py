"""The benchmarks are scripts nothing else imports: their imports and argument checks must
keep up with the harness (foundation.py once imported a function the plugin had dropped)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[2] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_benchmark_starts_and_names_a_bad_topology(script):
    out = subprocess.run([sys.executable, str(script), "--topology", "no-such-topology"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "unknown topology 'no-such-topology'" in out.stderr.splitlines()[-1]
