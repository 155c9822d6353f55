"""The services the tests talk to: Redis, RabbitMQ, NATS with JetStream, and PostgreSQL.

``require(SERVICE)`` skips the calling test, naming the missing service and how to start it,
unless ``INOTIFIER_REQUIRE_SERVICES`` is set (``.ci/run`` sets it): then a missing service
fails the test. ``PrivateRedis`` and ``PrivateNats`` run a broker of the test's own, on its
own port and data directory, for the tests that stop and start the broker; each is ended by
its pid."""

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    start: str

    @property
    def address(self):
        return f"{self.host}:{self.port}"


REDIS = Service(
    "Redis",
    "127.0.0.1",
    6379,
    "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no",
)
RABBITMQ = Service("RabbitMQ", "127.0.0.1", 5672, "rabbitmq-server -detached")
NATS = Service(
    "NATS with JetStream",
    "127.0.0.1",
    4222,
    "nats-server -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server",
)

POSTGRESQL = Service(
    "PostgreSQL",
    "127.0.0.1",
    5432,
    "pg_ctlcluster 15 main start (with trust authentication for 127.0.0.1)",
)


def listening(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def required():
    return os.environ.get("INOTIFIER_REQUIRE_SERVICES", "") not in ("", "0")


def require(service):
    """Skips (or, when services are required, fails) the test unless ``service`` runs."""
    if listening(service.host, service.port):
        return
    reason = f"{service.name} is not running on {service.address} (start it with `{service.start}`)"
    if required():
        pytest.fail(f"{reason}; INOTIFIER_REQUIRE_SERVICES is set")
    pytest.skip(reason)


def require_program(program, service):
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed: it runs a private {service.name} for this test"
        if required():
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(host, port, timeout, what):
    deadline = time.monotonic() + timeout
    while not listening(host, port, timeout=0.5):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not listen on {host}:{port} within {timeout}s")
        time.sleep(0.05)


class PrivateBroker:
    """A broker process of one test: ``start()``, ``stop()`` (SIGTERM, then SIGKILL), and
    ``end()`` at teardown; the port stays the same across restarts."""

    name = "broker"

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.process = None

    def command(self):
        raise NotImplementedError

    def start(self):
        assert self.process is None or self.process.poll() is not None
        log = open(self.directory / f"{self.name}.log", "ab")  # noqa: SIM115 (kept by Popen)
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory
        )
        log.close()
        wait_listening("127.0.0.1", self.port, 20, f"the private {self.name}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    end = stop


class PrivateRedis(PrivateBroker):
    """A redis-server that keeps what it was sent across a restart (append-only file, fsync
    on every write)."""

    name = "redis"

    def command(self):
        return [
            require_program("redis-server", REDIS),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "always",
        ]  # fmt: skip

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"


class PrivateNats(PrivateBroker):
    """A nats-server with JetStream storing streams in the test's directory."""

    name = "nats"

    def command(self):
        return [
            require_program("nats-server", NATS),
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-js",
            "-sd", str(self.directory / "jetstream"),
        ]  # fmt: skip

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"


@pytest.fixture
def private_redis(tmp_path):
    broker = PrivateRedis(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.end()


@pytest.fixture
def private_nats(tmp_path):
    broker = PrivateNats(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.end()
