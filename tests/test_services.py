"""The guard of the broker tests: a missing service skips them, naming it and its start
command, unless INOTIFIER_REQUIRE_SERVICES is set, where it fails them."""

import socket

import pytest
from services import Service, free_port, require


def absent_service():
    port = free_port()
    with socket.socket() as probe:  # nothing listens there once this is closed
        probe.bind(("127.0.0.1", port))
    return Service("Test broker", "127.0.0.1", port, "test-broker --start")


def test_a_missing_service_skips_naming_it(monkeypatch):
    monkeypatch.delenv("INOTIFIER_REQUIRE_SERVICES", raising=False)
    service = absent_service()
    with pytest.raises(pytest.skip.Exception) as skipped:
        require(service)
    assert str(skipped.value) == (
        f"Test broker is not running on 127.0.0.1:{service.port} "
        "(start it with `test-broker --start`)"
    )


def test_a_missing_required_service_fails(monkeypatch):
    monkeypatch.setenv("INOTIFIER_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require(absent_service())
    assert "INOTIFIER_REQUIRE_SERVICES is set" in str(failed.value)


def test_a_running_service_passes(monkeypatch):
    monkeypatch.setenv("INOTIFIER_REQUIRE_SERVICES", "1")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        require(Service("Listening", "127.0.0.1", server.getsockname()[1], "-"))
