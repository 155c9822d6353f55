"""The ``jetstream`` processor end to end: real files, the real ``inotifier run`` daemon from
TOML with its journal, and an independent JetStream consumer (nats-py, a durable pull consumer
on a stream the test creates). Every file's events reach the stream, in order per file, with
the documented headers; a broker restart during a burst and a daemon stopped while NATS is
down lose nothing, and the dedupe header keeps the duplicates rare.

``JETSTREAM_BENCH_FILES=20000 pytest -s -k throughput`` prints the delivered and acknowledged
events per second of a larger burst."""

import asyncio
import json
import os
import re
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
from conftest import wait_for
from services import NATS, require

nats = pytest.importorskip("nats")
from nats.js.api import StorageType, StreamConfig  # noqa: E402

pytestmark = pytest.mark.brokers

MESSAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{4})-([0-9a-f]{12})$")


class Consumer:
    """A synchronous front to nats-py: a stream of the test's own and a durable pull consumer
    on it. The connection is closed and opened again around a broker restart."""

    def __init__(self, url, storage):
        self.url = url
        self.storage = storage
        token = uuid.uuid4().hex[:12]
        self.stream = f"INOTIFIER_TEST_{token}"
        self.prefix = f"inotifier_test.{token}"
        self.loop = asyncio.new_event_loop()
        self.client = None
        self.subscription = None
        # Every message fetched, in the order of the stream.
        self.messages = []

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def connect(self):
        self.client = self.run(nats.connect(self.url, allow_reconnect=False, connect_timeout=5))
        self.js = self.client.jetstream(timeout=10)
        self.subscription = None

    def create_stream(self):
        self.run(
            self.js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.>"],
                    storage=self.storage,
                    duplicate_window=120.0,
                )
            )
        )

    def delete_stream(self):
        self.run(self.js.delete_stream(self.stream))

    def stored(self):
        """How many messages the stream holds."""
        return self.run(self.js.stream_info(self.stream)).state.messages

    def fetch(self):
        """Fetches (and acknowledges) what the consumer has not had yet; returns all so far."""
        if self.subscription is None:
            self.subscription = self.run(
                self.js.pull_subscribe(f"{self.prefix}.>", durable="checker", stream=self.stream)
            )
        try:
            batch = self.run(self.subscription.fetch(batch=2000, timeout=0.2))
        except nats.errors.TimeoutError:
            return self.messages
        for message in batch:
            self.messages.append(message)
            self.run(message.ack())
        self.run(self.client.flush())
        return self.messages

    def close(self):
        if self.client is not None and not self.client.is_closed:
            self.run(self.client.close())
        self.client = None

    def end(self):
        self.close()
        self.loop.close()


def daemon_config(watched, tmp_path, url, consumer, source, drain="10s"):
    return f"""log_level = "info"
drain_timeout = "{drain}"

[journal]
path = "{tmp_path / "inotifier.journal"}"

[[watch]]
path = "{watched}"
events = "IN_CREATE|IN_CLOSE_WRITE"
processor = "jetstream"
[watch.options]
url = "{url}"
subject = "{consumer.prefix}.{{maskname}}"
stream = "{consumer.stream}"
source = "{source}"
timeout = "2s"
[watch.retry]
initial = "50ms"
max = "1s"
"""


def watched_dir(tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    return watched


def write_files(watched, names):
    for name in names:
        (watched / name).write_bytes(b"x")


def by_file(messages):
    """The masknames each file's messages carry, in stream order, with their messages."""
    files = defaultdict(list)
    for message in messages:
        event = json.loads(message.data)
        files[event["name"]].append((event["maskname"], event, message))
    return files


def every_file_complete(consumer, names):
    files = by_file(consumer.fetch())
    return all(
        {"IN_CREATE", "IN_CLOSE_WRITE"} <= {mask for mask, _, _ in files.get(name, ())}
        for name in names
    )


@pytest.fixture
def machine_consumer():
    require(NATS)
    consumer = Consumer(f"nats://{NATS.address}", StorageType.MEMORY)
    consumer.connect()
    consumer.create_stream()
    try:
        yield consumer
    finally:
        consumer.close()
        consumer.connect()
        consumer.delete_stream()
        consumer.end()


def test_every_file_of_a_burst_reaches_the_stream_in_order(toml_daemon, tmp_path, machine_consumer):
    consumer = machine_consumer
    watched = watched_dir(tmp_path)
    source = f"test-host-{uuid.uuid4().hex[:6]}"
    toml_daemon.write(daemon_config(watched, tmp_path, f"nats://{NATS.address}", consumer, source))
    toml_daemon.start()
    names = [f"file {index:03}.txt" for index in range(500)]
    write_files(watched, names)

    wait_for(
        lambda: every_file_complete(consumer, names),
        timeout=60,
        what="every file's two events in the stream",
    )
    files = by_file(consumer.messages)
    assert set(files) == set(names)
    for name in names:
        masks = [mask for mask, _, _ in files[name]]
        assert masks == ["IN_CREATE", "IN_CLOSE_WRITE"], (name, masks)
        for mask, event, message in files[name]:
            assert message.subject == f"{consumer.prefix}.{mask}"
            assert event["pathname"] == str(watched / name)
            headers = message.headers
            assert headers["Inotifier-Event-Id"] == str(event["id"])
            assert headers["Inotifier-Source"] == source
            # The message id ends with the event id, in hexadecimal (see identity.rs).
            match = MESSAGE_ID.match(headers["Nats-Msg-Id"])
            assert match, headers
            assert int(match[1] + match[2], 16) == event["id"]
    ids = [message.headers["Nats-Msg-Id"] for message in consumer.messages]
    assert len(ids) == len(set(ids)) == 1000
    assert toml_daemon.stop() == 0


def test_a_broker_restart_during_a_burst_loses_no_file(toml_daemon, tmp_path, private_nats):
    consumer = Consumer(private_nats.url, StorageType.FILE)
    try:
        consumer.connect()
        consumer.create_stream()
        watched = watched_dir(tmp_path)
        toml_daemon.write(
            daemon_config(watched, tmp_path, private_nats.url, consumer, "burst-host")
        )
        toml_daemon.start()
        names = [f"f{index:04}" for index in range(2000)]
        created = [0]
        broker_down = threading.Event()
        failure = []

        def burst():
            try:
                for index, name in enumerate(names):
                    if index == 600:
                        broker_down.wait(timeout=60)
                    (watched / name).write_bytes(b"x")
                    created[0] = index + 1
                    if index >= 600:
                        # Spread the rest over a few seconds: part while the broker is down,
                        # part after it is back.
                        time.sleep(0.003)
            except Exception as error:  # reported by the test below
                failure.append(error)

        thread = threading.Thread(target=burst)
        thread.start()
        try:
            wait_for(lambda: consumer.stored() >= 100, timeout=30, what="some messages stored")
            consumer.close()
            private_nats.stop()
            broker_down.set()
            wait_for(lambda: created[0] >= 1400, timeout=60, what="files created while down")
            private_nats.start()
        finally:
            broker_down.set()
            thread.join(timeout=120)
        assert not failure, failure
        assert created[0] == len(names)

        consumer.connect()
        wait_for(
            lambda: every_file_complete(consumer, names),
            timeout=120,
            interval=0.2,
            what="every file's events after the broker restart",
        )
        files = by_file(consumer.messages)
        missing = [name for name in names if name not in files]
        assert not missing
        delivered = Counter(
            (name, mask) for name, entries in files.items() for mask, _, _ in entries
        )
        duplicates = sum(count - 1 for count in delivered.values())
        print(
            f"\n{len(consumer.messages)} messages for {len(names)} files: {duplicates} duplicates"
        )
        # The dedupe header drops what is delivered again: duplicates are rare.
        assert duplicates <= len(names) // 100, duplicates
        for name in names:
            masks = [mask for mask, _, _ in files[name]]
            assert masks.index("IN_CREATE") < masks.index("IN_CLOSE_WRITE"), (name, masks)
        assert "outage" in toml_daemon.stderr()
        assert toml_daemon.stop() == 0
    finally:
        consumer.end()


def test_a_daemon_stopped_while_nats_is_down_delivers_after_both_are_back(
    toml_daemon, tmp_path, private_nats
):
    consumer = Consumer(private_nats.url, StorageType.FILE)
    try:
        consumer.connect()
        consumer.create_stream()
        watched = watched_dir(tmp_path)
        toml_daemon.write(
            daemon_config(watched, tmp_path, private_nats.url, consumer, "down-host", drain="1s")
        )
        toml_daemon.start()
        first = [f"before{index:03}" for index in range(50)]
        write_files(watched, first)
        wait_for(lambda: consumer.stored() == 100, timeout=30, what="the first files' events")
        consumer.close()
        private_nats.stop()

        pending = [f"pending{index:03}" for index in range(200)]
        write_files(watched, pending)
        wait_for(
            lambda: "outage" in toml_daemon.stderr(),
            timeout=30,
            what="the daemon to meet the outage",
        )
        # Stopped while NATS is down: what it could not deliver stays in its journal.
        assert toml_daemon.stop() == 0
        private_nats.start()
        consumer.connect()
        assert consumer.stored() == 100

        toml_daemon.start()
        wait_for(
            lambda: every_file_complete(consumer, first + pending),
            timeout=60,
            interval=0.2,
            what="the undelivered events after the restarts",
        )
        files = by_file(consumer.messages)
        for name in pending:
            masks = [mask for mask, _, _ in files[name]]
            assert masks == ["IN_CREATE", "IN_CLOSE_WRITE"], (name, masks)
        assert toml_daemon.stop() == 0
    finally:
        consumer.end()


def test_throughput_of_a_large_burst(toml_daemon, tmp_path, machine_consumer):
    """Prints the events per second delivered and acknowledged by the stream (no assert on
    time): ``JETSTREAM_BENCH_FILES`` files, 2000 by default, two events each."""
    consumer = machine_consumer
    count = int(os.environ.get("JETSTREAM_BENCH_FILES", "2000"))
    watched = watched_dir(tmp_path)
    toml_daemon.write(
        daemon_config(watched, tmp_path, f"nats://{NATS.address}", consumer, "bench-host")
    )
    toml_daemon.start()
    started = time.monotonic()
    write_files(watched, (f"f{index:06}" for index in range(count)))
    written = time.monotonic() - started
    wait_for(
        lambda: consumer.stored() >= 2 * count,
        timeout=120 + count / 100,
        interval=0.05,
        what="every event acknowledged",
    )
    elapsed = time.monotonic() - started
    stored = consumer.stored()
    print(
        f"\n{count} files written in {written:.2f}s; {2 * count} events delivered and "
        f"acknowledged in {elapsed:.2f}s: {2 * count / elapsed:.0f} events/s"
    )
    if stored > 2 * count:
        # An inotify queue overflow on a busy machine makes the daemon rescan the directory,
        # which reports the files again (origin "scan"), under new event ids.
        overflows = toml_daemon.stderr().count("overflow")
        print(f"{stored - 2 * count} more messages: {overflows} overflow lines in the log")
    assert toml_daemon.stop() == 0
