"""Every selection the shipped jobs name collects on its topology (pytest --collect-only, no
cluster). A node id that does not exist on a topology makes pytest exit 4 before any test: the
ha-3node main job lost os-aa-3node that way (MariaDB's faults named on the Galera layout)."""
import configparser
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness import job

ROOT = Path(__file__).resolve().parents[2]


def shipped_specs() -> list[tuple[str, str]]:
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    specs = []
    for section in tox.sections():
        for line in tox[section].get("commands", "").splitlines():
            words = shlex.split(line.replace("{posargs}", ""))
            if words[:4] == ["python", "-m", "harness", "job"]:
                specs += [(section, w) for w in words[4:] if w != "--" and not w.startswith("-")]
    return specs


def test_the_jobs_are_found():
    envs = {env for env, _ in shipped_specs()}
    assert {"testenv:ha-2node", "testenv:ha-3node", "testenv:tests"} <= envs


@pytest.mark.parametrize("env,text", [s for s in shipped_specs() if ":" in s[1]], ids=lambda v: v)
def test_each_selection_collects_on_its_topology(env, text):
    spec = job.parse_spec(text)
    cmd = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
           "--topology", spec.topology, *spec.args]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"{env} {text}: pytest exit {r.returncode}: {(r.stdout + r.stderr)[-600:]}"
    assert "collected" in r.stdout or "tests collected" in r.stdout, r.stdout[-300:]
