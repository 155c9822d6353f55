"""The ``celery`` processor against real brokers and a real Celery worker: every event of a
burst becomes one task that a stock ``celery worker`` runs, over Redis and over AMQP
(RabbitMQ), including across a broker restart; and the message is the one Celery itself
sends (the golden files of crates/inotifier-brokers/tests/golden)."""

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from conftest import TESTS_DIR, read_jsonl, wait_for
from services import RABBITMQ, REDIS, listening, require

pytestmark = pytest.mark.brokers

GOLDEN = TESTS_DIR.parent / "crates/inotifier-brokers/tests/golden"
TASK = "inotifier_tests.record"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Worker:
    """``celery -A celery_recorder worker`` on one queue, recording each task it runs."""

    def __init__(self, root, broker_url, queue):
        self.root = root
        self.queue = queue
        self.records = root / f"{queue}.records.jsonl"
        self.log = root / f"{queue}.worker.log"
        self.env = {
            **os.environ,
            "CELERY_BROKER_URL": broker_url,
            "INOTIFIER_TEST_RECORD_FILE": str(self.records),
            "PYTHONPATH": str(TESTS_DIR),
        }
        self.process = None

    def start(self):
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "celery_recorder", "worker",
                    "-Q", self.queue, "--pool", "solo", "--without-gossip", "--without-mingle",
                    "-l", "info", "-n", f"{self.queue}@%h",
                ],
                env=self.env, cwd=TESTS_DIR, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self.ready, timeout=60, what="the Celery worker to be ready")

    def ready(self):
        if self.process.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{self.log.read_text()}")
        return " ready." in self.log.read_text()

    def tasks(self):
        return read_jsonl(self.records)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path):
    started = []

    def start(broker_url, queue):
        worker = Worker(tmp_path, broker_url, queue)
        started.append(worker)
        worker.start()
        return worker

    yield start
    for worker in started:
        worker.stop()
        # Whatever the outcome, the queue goes: the machine's brokers keep no test's leftovers.
        transport = "redis" if worker.env["CELERY_BROKER_URL"].startswith("redis") else "amqp"
        try:
            purge(transport, worker.env["CELERY_BROKER_URL"], worker.queue)
        except (OSError, redis.ConnectionError):
            pass  # a test's private broker, already ended with everything in it


def celery_config(daemon, watched, queue, broker_url=None, retry_max="1s"):
    url = f'broker_url = "{broker_url}"\n' if broker_url else ""
    daemon.write(
        f"""
[journal]
enabled = true
path = "{daemon.root / "inotifier.journal"}"

[[watch]]
path = "{watched}"
events = "IN_CREATE|IN_CLOSE_WRITE"
processor = "celery"
[watch.options]
task = "{TASK}"
queue = "{queue}"
source = "test-host"
kwargs = {{ file = "name" }}
{url}[watch.retry]
attempts = 3
initial = "50ms"
max = "{retry_max}"
"""
    )


def make_files(directory, names, pause_every=0, pause=0.0):
    for index, name in enumerate(names):
        (directory / name).write_bytes(b"x" * 10)
        if pause_every and index % pause_every == pause_every - 1:
            time.sleep(pause)  # paces the burst so that a broker restart lands inside it


def per_file(tasks):
    """Each file's event names, in the order the worker ran them, from the task calls."""
    files = {}
    for task in tasks:
        event = task["args"][0]
        assert task["kwargs"] == {"file": event["name"]}
        files.setdefault(event["name"], []).append(event["maskname"])
    return files


def assert_every_event_arrived(tasks, names):
    files = per_file(tasks)
    missing = [name for name in names if name not in files]
    assert not missing, f"{len(missing)} files never reached the worker, e.g. {missing[:5]}"
    for name in names:
        # A redelivered event repeats; each file's first CREATE comes before its CLOSE_WRITE.
        seen = files[name]
        assert "IN_CREATE" in seen and "IN_CLOSE_WRITE" in seen, (name, seen)
        assert seen.index("IN_CREATE") < seen.index("IN_CLOSE_WRITE"), (name, seen)


def all_files_in(worker, names):
    files = per_file(worker.tasks())
    return all(
        name in files and {"IN_CREATE", "IN_CLOSE_WRITE"} <= set(files[name]) for name in names
    )


def check_task_ids(tasks):
    """Task ids are the events' message ids: one per event, the same when redelivered."""
    by_id = {}
    for task in tasks:
        event = task["args"][0]
        assert task["task_id"].endswith(f"{event['id']:012x}"), task
        assert task["origin"] == "inotifier@test-host"
        by_id.setdefault(task["task_id"], set()).add((event["name"], event["maskname"]))
    assert all(len(events) == 1 for events in by_id.values()), "one task id per event"
    return len(tasks) - len(by_id)


def test_golden_message_is_what_celery_sends():
    """The pinned message is the one Celery's own ``send_task`` makes for the same call, but
    for the fields that name the sending process (origin, reply_to, delivery_tag) and the
    JSON spacing of the body."""
    require(REDIS)
    import redis
    from celery import Celery

    golden = json.loads((GOLDEN / "celery-redis.json").read_text())
    args, kwargs, embed = json.loads(base64.b64decode(golden["body"]))
    assert json.loads((GOLDEN / "celery-body.json").read_text()) == [args, kwargs, embed]
    queue = golden["properties"]["delivery_info"]["routing_key"]
    client = redis.Redis(host=REDIS.host, port=REDIS.port, db=15)
    client.delete(queue)
    try:
        app = Celery("golden", broker=f"redis://{REDIS.address}/15")
        app.send_task(
            golden["headers"]["task"],
            args=args,
            kwargs=kwargs,
            task_id=golden["headers"]["id"],
            queue=queue,
        )
        (raw,) = client.lrange(queue, 0, -1)
    finally:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    celery_message = json.loads(raw)
    assert json.loads(base64.b64decode(celery_message["body"])) == [args, kwargs, embed]
    per_process = {"origin", "reply_to", "delivery_tag", "body"}
    for part in ("headers", "properties", None):
        ours = golden[part] if part else golden
        theirs = celery_message[part] if part else celery_message
        assert list(ours) == list(theirs), f"the keys of {part or 'the message'}"
        for key in ours:
            if key not in per_process and not isinstance(ours[key], dict):
                assert ours[key] == theirs[key], (part, key)
    assert golden["headers"]["origin"] == "inotifier@web-1"


@pytest.mark.parametrize("transport", ["redis", "amqp"])
def test_a_celery_worker_runs_one_task_per_event(transport, toml_daemon, workers, tmp_path):
    require(REDIS if transport == "redis" else RABBITMQ)
    queue = unique("inotifier-burst")
    broker_url = f"redis://{REDIS.address}/0" if transport == "redis" else AMQP_URL
    watched = tmp_path / "watched"
    watched.mkdir()
    # The AMQP URL has a password: it can only come from the environment.
    celery_config(toml_daemon, watched, queue, broker_url if transport == "redis" else None)
    toml_daemon.start(env={"CELERY_BROKER_URL": broker_url})
    worker = workers(broker_url, queue)
    names = [f"f{index:04}.txt" for index in range(300)]
    make_files(watched, names)
    wait_for(lambda: all_files_in(worker, names), timeout=90, what="every task to run")
    tasks = worker.tasks()
    assert_every_event_arrived(tasks, names)
    assert check_task_ids(tasks) == 0, "no redelivery without a failure"
    assert {task["routing_key"] for task in tasks} == {queue}
    assert toml_daemon.stop() == 0


def purge(transport, broker_url, queue):
    if transport == "redis":
        import redis

        redis.Redis.from_url(broker_url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
    else:
        import amqp

        connection = amqp.Connection(RABBITMQ.address, userid="guest", password="guest")
        connection.connect()
        try:
            channel = connection.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
        finally:
            connection.close()


def burst_across_restart(watched, names, delivered, stop_broker, start_broker):
    """Makes the files in a thread; once ``delivered()`` says some tasks reached the broker,
    stops the broker while files keep coming, and starts it again. Returns how many had
    been delivered when it stopped."""
    burst = threading.Thread(target=make_files, args=(watched, names, 50, 0.1))
    burst.start()
    try:
        wait_for(lambda: delivered() >= 50, timeout=60, what="the first tasks")
        stopped_at = delivered()
        stop_broker()
    finally:
        burst.join(timeout=120)
    try:
        assert stopped_at < 2 * len(names), "the broker stopped inside the burst"
    finally:
        start_broker()
    return stopped_at


def test_celery_over_redis_across_a_redis_restart(toml_daemon, workers, private_redis, tmp_path):
    """The worker starts once Redis is back: a worker reading while Redis goes down can lose
    the message it was popping (kombu's Redis transport takes a message off the list before the
    worker has it), which would be Celery's loss, not the daemon's. docs/brokers.md says so."""
    import redis

    queue = unique("inotifier-restart")
    watched = tmp_path / "watched"
    watched.mkdir()
    celery_config(toml_daemon, watched, queue, private_redis.url)
    toml_daemon.start()
    names = [f"r{index:04}.txt" for index in range(600)]

    def queued():
        try:
            return redis.Redis.from_url(private_redis.url).llen(queue)
        except redis.ConnectionError:
            return 0

    stopped_at = burst_across_restart(
        watched, names, queued, private_redis.stop, private_redis.start
    )
    worker = workers(private_redis.url, queue)
    wait_for(lambda: all_files_in(worker, names), timeout=180, what="every task to run")
    tasks = worker.tasks()
    assert_every_event_arrived(tasks, names)
    duplicates = check_task_ids(tasks)
    print(f"stopped after {stopped_at} tasks; {duplicates} redelivered")
    assert "outage=true" in toml_daemon.stderr()
    assert toml_daemon.stop() == 0


def rabbitmq_stop():
    subprocess.run(["rabbitmqctl", "stop"], check=True, capture_output=True, timeout=120)
    wait_for(
        lambda: not listening(RABBITMQ.host, RABBITMQ.port, timeout=0.5),
        timeout=60,
        what="RabbitMQ to stop",
    )


def rabbitmq_start():
    """The machine's start command, then waits until RabbitMQ serves again (``await_startup``
    fails at once until the node has registered, hence the retries)."""
    if not listening(RABBITMQ.host, RABBITMQ.port, timeout=0.5):
        subprocess.run(["rabbitmq-server", "-detached"], check=True, timeout=120)
    wait_for(
        lambda: listening(RABBITMQ.host, RABBITMQ.port, timeout=0.5),
        timeout=120,
        what="RabbitMQ to listen",
    )
    wait_for(
        lambda: (
            subprocess.run(
                ["rabbitmqctl", "await_startup", "--timeout", "60"], capture_output=True, timeout=90
            ).returncode
            == 0
        ),
        timeout=120,
        interval=0.5,
        what="RabbitMQ to finish starting",
    )


@pytest.mark.needs_root(
    "stops and starts the machine's RabbitMQ, which only root or the rabbitmq user may control"
)
def test_celery_over_amqp_across_a_rabbitmq_restart(toml_daemon, workers, tmp_path):
    """Stops the machine's RabbitMQ (durable queue, persistent messages) and starts it again
    with its own start command; it runs again when the test ends, whatever happened."""
    require(RABBITMQ)
    queue = unique("inotifier-restart")
    watched = tmp_path / "watched"
    watched.mkdir()
    celery_config(toml_daemon, watched, queue)
    toml_daemon.start(env={"CELERY_BROKER_URL": AMQP_URL})
    worker = workers(AMQP_URL, queue)
    names = [f"a{index:04}.txt" for index in range(600)]
    try:
        stopped_at = burst_across_restart(
            watched, names, lambda: len(worker.tasks()), rabbitmq_stop, rabbitmq_start
        )
        wait_for(lambda: all_files_in(worker, names), timeout=180, what="every task to run")
    finally:
        rabbitmq_start()
    tasks = worker.tasks()
    assert_every_event_arrived(tasks, names)
    duplicates = check_task_ids(tasks)
    print(f"stopped after {stopped_at} tasks; {duplicates} redelivered")
    assert toml_daemon.stop() == 0


def test_a_password_in_the_configured_url_is_refused(toml_daemon, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    celery_config(toml_daemon, watched, "q", "amqp://guest:guest@127.0.0.1//")
    result = subprocess.run(
        [str(toml_daemon.binary), "check", "--config", str(toml_daemon.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "put the whole URL in the environment variable CELERY_BROKER_URL" in (
        result.stdout + result.stderr
    )
    assert "guest:guest" not in result.stdout + result.stderr


def test_django_sends_tasks_with_the_projects_celery_broker_url(project, workers):
    """``INOTIFIER_WATCH_PATHS`` names the ``celery`` processor; the broker URL, password
    included, comes from ``settings.CELERY_BROKER_URL`` as in any Django project using
    Celery, not from the processor's options."""
    require(RABBITMQ)
    queue = unique("inotifier-django")
    project.extra_env["INOTIFIER_TEST_CELERY_BROKER_URL"] = AMQP_URL
    project.extra_env.pop("CELERY_BROKER_URL", None)
    project.watches = [
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "celery",
            {"options": {"task": TASK, "queue": queue, "args": ["pathname", "maskname"]}},
        ]
    ]
    assert project.start().returncode == 0, project.daemon_stderr()
    worker = workers(AMQP_URL, queue)
    names = [f"d{index:03}.txt" for index in range(50)]
    make_files(project.watched, names)
    expected = {str(project.watched / name) for name in names}
    wait_for(
        lambda: {task["args"][0] for task in worker.tasks()} >= expected,
        timeout=60,
        what="every task to run",
    )
    assert {task["args"][1] for task in worker.tasks()} == {"IN_CLOSE_WRITE"}
    assert project.manage("inotifier_stop").returncode == 0


def test_golden_files_exist():
    assert Path(GOLDEN / "celery-redis.json").is_file()
