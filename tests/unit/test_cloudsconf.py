"""A kept run's cloud goes into the user's clouds.yaml and out again with the run."""
import yaml

from harness import cloudsconf

RUN = """clouds:
  os-aa-2node:
    auth: {auth_url: 'http://10.213.22.100:5000/v3', username: admin, password: pw}
    region_name: RegionOne
"""


def test_publish_merges_and_withdraw_removes_only_what_the_run_wrote(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    user = cloudsconf.user_clouds_file()
    user.parent.mkdir(parents=True)
    user.write_text("clouds:\n  prod: {auth: {auth_url: 'https://keystone.example:5000/v3'}}\n")
    run_file = cloudsconf.publish("r1", RUN)
    merged = yaml.safe_load(user.read_text())["clouds"]
    assert set(merged) == {"prod", "os-aa-2node"} and run_file.is_file()
    assert oct(user.stat().st_mode & 0o777) == "0o600"
    cloudsconf.withdraw("r1")
    assert set(yaml.safe_load(user.read_text())["clouds"]) == {"prod"} and not run_file.exists()


def test_an_entry_the_user_changed_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    cloudsconf.publish("r1", RUN)
    user = cloudsconf.user_clouds_file()
    data = yaml.safe_load(user.read_text())
    data["clouds"]["os-aa-2node"]["region_name"] = "Mine"
    user.write_text(yaml.safe_dump(data))
    cloudsconf.withdraw("r1")
    assert "os-aa-2node" in yaml.safe_load(user.read_text())["clouds"]
