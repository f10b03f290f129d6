"""The catalog creation retries a dropped Keystone connection, after Keystone answers again."""
from types import SimpleNamespace

import pytest
from keystoneauth1.exceptions.connection import ConnectFailure

from harness.provision import Provisioner


def catalog_failing(times: int, calls: list):
    def create():
        calls.append("create")
        if calls.count("create") <= times:
            raise ConnectFailure("Connection reset by peer")
    return SimpleNamespace(create_catalog=create, wait_apis=lambda services: calls.append(f"wait {services}"))


def test_dropped_connection_is_retried_after_keystone_answers(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    calls, logs = [], []
    Provisioner.create_catalog(SimpleNamespace(log=logs.append), catalog_failing(2, calls))
    assert calls == ["create", "wait ['keystone']", "create", "wait ['keystone']", "create"]
    assert logs[0] == "catalog attempt 1: Connection reset by peer; retrying once Keystone answers"


def test_gives_up_after_the_last_attempt(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    calls = []
    with pytest.raises(ConnectFailure):
        Provisioner.create_catalog(SimpleNamespace(log=lambda m: None), catalog_failing(9, calls), attempts=3)
    assert calls.count("create") == 3
