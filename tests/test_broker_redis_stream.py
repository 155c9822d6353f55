"""The ``redis_stream`` processor end to end: real files in a watched directory, the real
``inotifier run`` daemon from a TOML config with its journal, and an independent reader of
the stream (redis-py ``XREAD``). A burst reaches the machine's Redis complete and in order per
file; a Redis restarted mid-burst loses nothing (duplicates only as redeliveries of the same
``message_id``); a daemon stopped while Redis is down keeps the undelivered events in its
journal and delivers them after its restart.

``REDIS_STREAM_BURST=20000 pytest -s -k reaches_the_stream`` runs the first test on a larger
burst and prints the rate of events delivered and confirmed by Redis; ``REDIS_STREAM_PENDING``
sets the files of the last test, which prints how long the redelivery of the pending events
took (nothing is asserted on time; ``INOTIFIER_BIN=target/release/inotifier`` measures the
optimized daemon)."""

import contextlib
import functools
import json
import os
import re
import sqlite3
import subprocess
import threading
import time
import uuid

import pytest
import redis
from conftest import wait_for
from services import REDIS, require

pytestmark = pytest.mark.brokers

FIELDS = ["source", "id", "pathname", "maskname", "event", "message_id"]
SOURCE = "pytest-redis-stream"


def message_id(source, journal, event_id):
    """The documented message id: 64-bit FNV-1a of the source, a NUL byte and the journal's
    instance id (8 bytes, big-endian), then the event id."""
    digest = 0xCBF29CE484222325
    for byte in source.encode() + b"\0" + journal.to_bytes(8, "big"):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return (
        f"{digest >> 32:08x}-{(digest >> 16) & 0xFFFF:04x}-{digest & 0xFFFF:04x}-"
        f"{event_id >> 48:04x}-{event_id & 0xFFFFFFFFFFFF:012x}"
    )


@functools.cache
def journal_instance(path):
    """The instance id a journal drew when it was made (its ``meta`` table), read-only."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
    return value


class StreamReader:
    """Reads a stream from its start with ``XREAD``, keeping every entry it saw; a Redis that
    is down just yields nothing new."""

    def __init__(self, url, key):
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
        self.key = key
        self.last_id = "0-0"
        self.entries = []

    def poll(self):
        """Reads what is new; returns how many entries were read in all."""
        try:
            while True:
                reply = self.client.xread({self.key: self.last_id}, count=10000)
                if not reply:
                    break
                for entry_id, fields in reply[0][1]:
                    self.entries.append(fields)
                    self.last_id = entry_id
        except redis.ConnectionError:
            pass
        return len(self.entries)

    def by_pathname(self):
        """Per pathname, its entries in stream order."""
        files = {}
        for fields in self.entries:
            files.setdefault(fields["pathname"], []).append(fields)
        return files

    def delete(self):
        self.client.delete(self.key)
        self.client.close()


def config(tmp_path, watched, url, stream, retry="", queue_capacity=1024):
    return f"""drain_timeout = "2s"
queue_capacity = {queue_capacity}

[journal]
enabled = true
path = "{tmp_path / "inotifier.journal"}"

[[watch]]
path = "{watched}"
events = ["IN_CREATE", "IN_CLOSE_WRITE"]
processor = "redis_stream"
{retry}
[watch.options]
url = "{url}"
stream = "{stream}"
source = "{SOURCE}"
timeout = "5s"
"""


FAST_RETRY = """[watch.retry]
initial = "50ms"
max = "1s"
"""


def pending(inotifier_bin, tmp_path):
    """The events of the journal not acknowledged yet (``inotifier journal summary``)."""
    result = subprocess.run(
        [
            str(inotifier_bin),
            "journal",
            "summary",
            "--journal",
            str(tmp_path / "inotifier.journal"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("redis_stream@")]
    assert len(rows) == 1, result.stdout
    return int(rows[0].split()[1])


def burst(watched, names, pace=0.0, created=None):
    """Creates each file and writes it (IN_CREATE, then IN_CLOSE_WRITE); ``pace`` seconds
    between files spread the burst over time; ``created`` counts the files made so far."""
    for name in names:
        with open(watched / name, "w") as file:
            file.write(name)
        if created is not None:
            created.append(name)
        if pace:
            time.sleep(pace)


def check_fields(fields, watched):
    assert list(fields) == FIELDS, fields
    assert fields["source"] == SOURCE
    journal = journal_instance(watched.parent / "inotifier.journal")
    assert fields["message_id"] == message_id(SOURCE, journal, int(fields["id"]))
    event = json.loads(fields["event"])
    assert event["id"] == int(fields["id"])
    assert event["pathname"] == fields["pathname"]
    assert event["maskname"] == fields["maskname"]
    assert os.path.dirname(fields["pathname"]) == str(watched)


def distinct_events(entries):
    """The entries without the redeliveries (same ``message_id``), in order; each redelivery
    must be identical to its first delivery."""
    first = {}
    distinct = []
    for fields in entries:
        seen = first.get(fields["message_id"])
        if seen is None:
            first[fields["message_id"]] = fields
            distinct.append(fields)
        else:
            assert seen == fields, (seen, fields)
    return distinct


def test_a_burst_reaches_the_stream_complete_and_in_order_per_file(
    toml_daemon, tmp_path, inotifier_bin
):
    require(REDIS)
    total = int(os.environ.get("REDIS_STREAM_BURST", "500"))
    url = f"redis://{REDIS.host}:{REDIS.port}/0"
    stream = f"inotifier-test:burst:{uuid.uuid4().hex}"
    watched = tmp_path / "watched"
    watched.mkdir()
    reader = StreamReader(url, stream)
    try:
        toml_daemon.write(config(tmp_path, watched, url, stream))
        toml_daemon.start()
        names = [f"f{index:05}" for index in range(total)]
        started = time.monotonic()
        burst(watched, names)
        written = time.monotonic()
        # An entry in the stream is an XADD Redis executed and answered: the reader sees
        # events delivered and confirmed (the daemon's status counts only once a second).
        wait_for(
            lambda: reader.poll() >= 2 * total,
            timeout=60 + total / 100,
            interval=0.01,
            what=f"{2 * total} entries in the stream",
        )
        confirmed = time.monotonic()
        print(
            f"\n{total} files: {2 * total} events written in {written - started:.2f}s, "
            f"delivered and confirmed by Redis in {confirmed - started:.2f}s: "
            f"{2 * total / (confirmed - started):.0f} events/s"
        )
        assert len(reader.entries) == 2 * total
        files = reader.by_pathname()
        assert sorted(files) == sorted(str(watched / name) for name in names)
        for pathname, entries in files.items():
            assert [fields["maskname"] for fields in entries] == [
                "IN_CREATE",
                "IN_CLOSE_WRITE",
            ], pathname
            assert int(entries[0]["id"]) < int(entries[1]["id"])
            for fields in entries:
                check_fields(fields, watched)
        message_ids = [fields["message_id"] for fields in reader.entries]
        assert len(set(message_ids)) == len(message_ids)
        wait_for(
            lambda: pending(inotifier_bin, tmp_path) == 0,
            timeout=30,
            what="the journal to acknowledge every event",
        )
        wait_for(
            lambda: toml_daemon.status().get("delivered", 0) == 2 * total,
            timeout=30,
            what="the daemon to count every event delivered",
        )
        assert toml_daemon.stop() == 0, toml_daemon.stderr()
        assert toml_daemon.status()["running"] is False
    finally:
        reader.delete()


def test_a_redis_restarted_mid_burst_loses_nothing(
    toml_daemon, private_redis, tmp_path, inotifier_bin
):
    total = 2000
    stream = "inotifier-test:restart"
    watched = tmp_path / "watched"
    watched.mkdir()
    reader = StreamReader(private_redis.url, stream)
    toml_daemon.write(config(tmp_path, watched, private_redis.url, stream, FAST_RETRY))
    toml_daemon.start()
    names = [f"f{index:05}" for index in range(total)]
    created = []
    # About 3 ms between files: the burst lasts several seconds, so Redis stops during it.
    writer = threading.Thread(target=burst, args=(watched, names, 0.003, created))
    writer.start()
    try:
        wait_for(lambda: reader.poll() >= 300, timeout=60, what="some entries in the stream")
        private_redis.stop()
        stopped_at = len(created)
        down_since = time.monotonic()
        assert stopped_at < total, "the burst ended before Redis stopped: pace it slower"
        # The outage: Redis stays down while files keep being created, and until the daemon
        # has retried.
        wait_for(
            lambda: toml_daemon.status().get("retried", 0) >= 3,
            timeout=30,
            what="the daemon to retry while Redis is down",
        )
        writer.join(timeout=120)
        assert not writer.is_alive()
        outage = max(0.0, 3.0 - (time.monotonic() - down_since))
        time.sleep(outage)  # a Redis down for at least 3 s, by design (not waiting on a result)
        assert len(created) > stopped_at, "no file was created while Redis was down"
        private_redis.start()
        expected = {str(watched / name) for name in names}

        def complete():
            reader.poll()
            files = reader.by_pathname()
            return set(files) == expected and all(
                len(distinct_events(entries)) >= 2 for entries in files.values()
            )

        wait_for(complete, timeout=120, interval=0.2, what="every file's events in the stream")
        files = reader.by_pathname()
        duplicates = 0
        for pathname, entries in files.items():
            distinct = distinct_events(entries)
            assert [fields["maskname"] for fields in distinct] == [
                "IN_CREATE",
                "IN_CLOSE_WRITE",
            ], (pathname, entries)
            duplicates += len(entries) - len(distinct)
            for fields in entries:
                check_fields(fields, watched)
        wait_for(
            lambda: toml_daemon.status().get("delivered", 0) >= 2 * total,
            timeout=30,
            what="the daemon to count every event delivered",
        )
        wait_for(
            lambda: pending(inotifier_bin, tmp_path) == 0,
            timeout=30,
            what="the journal to acknowledge every event",
        )
        status = toml_daemon.status()
        assert status["failed"] == 0, status
        print(
            f"\nRedis down for {time.monotonic() - down_since:.1f}s from file {stopped_at} on; "
            f"{len(reader.entries)} entries for {2 * total} events: {duplicates} redelivered "
            f"(same message_id); {status['retried']} retries"
        )
        assert re.search(
            r"connection closed: Redis redis://127\.0\.0\.1:\d+/0", toml_daemon.stderr()
        )
    finally:
        writer.join(timeout=120)


def test_a_daemon_stopped_while_redis_is_down_delivers_after_its_restart(
    toml_daemon, private_redis, tmp_path, inotifier_bin
):
    total = int(os.environ.get("REDIS_STREAM_PENDING", "200"))
    stream = "inotifier-test:stopped"
    watched = tmp_path / "watched"
    watched.mkdir()
    reader = StreamReader(private_redis.url, stream)
    # Room in the daemon's queues for every event, so that it reads (and journals) them all
    # while Redis is down, rather than leaving them to the kernel's queue.
    capacity = max(1024, 2 * total)
    toml_daemon.write(
        config(tmp_path, watched, private_redis.url, stream, FAST_RETRY, queue_capacity=capacity)
    )
    toml_daemon.start()
    private_redis.stop()
    names = [f"f{index:04}" for index in range(total)]
    burst(watched, names)
    wait_for(
        lambda: (
            toml_daemon.status().get("events_seen", 0) >= 2 * total
            and toml_daemon.status().get("retried", 0) >= 1
        ),
        timeout=30,
        what="the daemon to read the burst and fail to deliver it",
    )
    assert toml_daemon.stop() == 0, toml_daemon.stderr()
    assert toml_daemon.status()["running"] is False
    assert pending(inotifier_bin, tmp_path) == 2 * total
    assert "retries given up" in toml_daemon.stderr()

    private_redis.start()
    assert reader.poll() == 0
    restarted = time.monotonic()
    toml_daemon.start()
    expected = {str(watched / name) for name in names}

    def complete():
        reader.poll()
        files = reader.by_pathname()
        return set(files) == expected and all(
            {"IN_CREATE", "IN_CLOSE_WRITE"} <= {fields["maskname"] for fields in entries}
            for entries in files.values()
        )

    wait_for(
        complete,
        timeout=60 + total / 100,
        interval=0.1,
        what="every file's events after the restart",
    )
    print(
        f"\n{2 * total} pending events redelivered and confirmed in "
        f"{time.monotonic() - restarted:.2f}s from the restart"
    )
    assert f"{2 * total} event(s) pending since the last run redelivered" in toml_daemon.stderr()
    for pathname, entries in reader.by_pathname().items():
        masknames = [fields["maskname"] for fields in distinct_events(entries)]
        assert masknames.index("IN_CREATE") < masknames.index("IN_CLOSE_WRITE"), pathname
        for fields in entries:
            check_fields(fields, watched)
    wait_for(
        lambda: pending(inotifier_bin, tmp_path) == 0,
        timeout=30,
        what="the journal to acknowledge every event",
    )
    assert toml_daemon.stop() == 0, toml_daemon.stderr()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            'streams = "x"',
            "unknown option `streams` for processor redis_stream: expected one of url, url_env, "
            "stream, maxlen, fields, source, timeout",
        ),
        (
            'url = "redis://:s3cret@127.0.0.1:6379/0"',
            "put the whole URL in the environment variable REDIS_URL",
        ),
        ('fields = ["pathname", "file"]', 'unknown event field "file": expected one of event'),
        ("maxlen = 0", "option `maxlen` of processor redis_stream: must be at least 1"),
    ],
)
def test_check_refuses_bad_options_saying_what_is_valid(tmp_path, inotifier_bin, options, message):
    watched = tmp_path / "watched"
    watched.mkdir()
    config_file = tmp_path / "inotifier.toml"
    config_file.write_text(
        f'[[watch]]\npath = "{watched}"\nevents = "IN_CLOSE_WRITE"\n'
        f'processor = "redis_stream"\n[watch.options]\n{options}\n'
    )
    result = subprocess.run(
        [str(inotifier_bin), "check", "--config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,  # the test asserts on the exit status
    )
    assert result.returncode == 1, result
    assert message in result.stderr, result.stderr
    assert "s3cret" not in result.stderr
