"""A kept run's OpenStack credentials where the `openstack` client looks for them.

`up` writes the run's clouds.yaml into the harness's state directory and merges its one
cloud (named after the topology) into ~/.config/openstack/clouds.yaml, so that
`openstack --os-cloud TOPOLOGY ...` works; removing the run takes the entry out again,
unless the user's file no longer holds exactly what the harness wrote."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from .ownership import clouds_yaml_path


def user_clouds_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    return base / "openstack" / "clouds.yaml"


def _read(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)


def publish(run_id: str, clouds_yaml: str) -> Path:
    """Write the run's file and merge its clouds into the user's; returns the run's file."""
    ours = yaml.safe_load(clouds_yaml)
    _write(clouds_yaml_path(run_id), ours)
    user = _read(user_clouds_file())
    user.setdefault("clouds", {}).update(ours["clouds"])
    _write(user_clouds_file(), user)
    return clouds_yaml_path(run_id)


def withdraw(run_id: str) -> None:
    ours = _read(clouds_yaml_path(run_id)).get("clouds", {})
    user = _read(user_clouds_file())
    clouds = user.get("clouds", {})
    gone = [name for name, entry in ours.items() if clouds.get(name) == entry]
    for name in gone:
        del clouds[name]
    if gone:
        _write(user_clouds_file(), user)
    clouds_yaml_path(run_id).unlink(missing_ok=True)
