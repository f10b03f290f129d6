"""Rendered Vagrantfiles against the real Vagrant and vagrant-libvirt: `vagrant validate`
checks every key of the libvirt provider's config (no VM, no libvirtd needed)."""
import os
import shutil
import subprocess

import pytest

from harness import topology
from harness.backends import vagrant

pytestmark = pytest.mark.skipif(
    not shutil.which("vagrant") or not vagrant.plugin_version(),
    reason="vagrant with the vagrant-libvirt plugin is not installed "
           "(`python -m harness host prepare --backend vagrant`)")


def validate(directory, text: str) -> subprocess.CompletedProcess:
    (directory / "Vagrantfile").write_text(text)
    env = dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_DEFAULT_PROVIDER="libvirt")
    return subprocess.run(["vagrant", "validate"], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["ha-2node", "ha-2node-qdevice", "os-ap-2node"])
def test_rendered_vagrantfile_validates(tmp_path, name):
    t = topology.load_named(name)
    shares = {}
    for v in t.shared_volumes:         # Vagrant checks that a shared folder's host path exists
        (tmp_path / v.name).mkdir()
        shares[str(tmp_path / v.name)] = v.path
    result = validate(tmp_path, vagrant.render_vagrantfile(t, "r0123ab", vagrant.box_name(t.layers), shares=shares))
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_reads_the_provider_config(tmp_path):
    """The check above means something: a bad libvirt setting fails it."""
    t = topology.load_named("ha-2node")
    text = vagrant.render_vagrantfile(t, "r0123ab", "box").replace("lv.cpus = 1", "lv.cpus = 1; lv.bogus = 1")
    result = validate(tmp_path, text)
    assert result.returncode != 0 and "bogus" in result.stdout + result.stderr
