"""A Django 5.2/6 project deployed as a team runs one (tests/productionproject): PostgreSQL with
persistent, health-checked connections, an ORM-writing processor, the ``django_task`` processor
with django-tasks-db's database backend and its worker, ``LOGGING`` to a file, the admin. Real
PostgreSQL (a database of the test's own, dropped at the end), real daemon, real worker, real
files. The daemon's connections are then terminated by PostgreSQL (``pg_terminate_backend``,
as a restart or failover does) and the next events must go through at their first attempt."""

import os
import uuid

import pytest
from conftest import wait_for
from services import POSTGRESQL, require

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (scripts/venv.sh)")

SETTINGS = "productionproject.settings"
# Run by `manage.py shell -c`: a superuser's view of the admin's inotifier page.
ADMIN_PAGE = """
from django.contrib.auth.models import User
from django.test import Client
User.objects.create_superuser("ops", "ops@example.com", "not-a-secret")
client = Client()
client.force_login(User.objects.get(username="ops"))
response = client.get("/admin/inotifier/journal/?state=pending")
print(response.status_code)
print(response.content.decode())
"""
DAEMON_APPLICATION = "inotifier-daemon"


@pytest.fixture
def database():
    require(POSTGRESQL)
    name = f"inotifier_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(
        host=POSTGRESQL.host,
        port=POSTGRESQL.port,
        user="postgres",
        dbname="postgres",
        autocommit=True,
    )
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, admin
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@pytest.fixture
def deployed(project, database):
    name, admin = database
    inbox = project.watched / "inbox"
    project.extra_env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        INOTIFIER_TEST_PG_DATABASE=name,
        INOTIFIER_TEST_INBOX=str(inbox),
        INOTIFIER_TEST_PG_APPLICATION=DAEMON_APPLICATION,
    )
    return project, inbox, name, admin


def rows(admin, database, query):
    with psycopg.connect(
        host=POSTGRESQL.host, port=POSTGRESQL.port, user="postgres", dbname=database
    ) as connection:
        return connection.execute(query).fetchall()


def ingested(admin, database):
    return len(rows(admin, database, "SELECT pathname FROM ingest_ingested"))


def daemon_connections(admin, database):
    return admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        (database, DAEMON_APPLICATION),
    ).fetchall()


def test_a_deployed_project_survives_postgresql_dropping_the_daemons_connections(deployed):
    project, inbox, database, admin = deployed

    # A release step on a host without the watched directory: checks and migrations pass,
    # warning about it; the daemon refuses to start there.
    migrated = project.manage("migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stderr
    assert "inotifier.W001" in migrated.stderr
    refused = project.start()
    assert refused.returncode == 1
    assert "inotifier.W001" in refused.stderr

    inbox.mkdir()
    started = project.start()
    assert started.returncode == 0, started.stderr
    # The worker's connections are its own business: only the daemon's are dropped below.
    worker = project.popen(
        "db_worker",
        "--queue-name",
        "files",
        "--interval",
        "0.1",
        "--no-startup-delay",
        env={"INOTIFIER_TEST_PG_APPLICATION": "worker"},
    )

    (inbox / "first.csv").write_text("a,b\n")
    wait_for(
        lambda: (
            rows(admin, database, "SELECT pathname FROM ingest_upload")
            == [(str(inbox / "first.csv"),)]
        ),
        timeout=30,
        what="the processor's row",
    )
    wait_for(
        lambda: (
            rows(admin, database, "SELECT pathname FROM ingest_ingested")
            == [(str(inbox / "first.csv"),)]
        ),
        timeout=60,
        what="the task's row, written by the worker",
    )

    # CONN_MAX_AGE = None keeps the daemon's connections from one event to the next.
    kept = wait_for(lambda: daemon_connections(admin, database), what="the daemon's connections")
    (inbox / "again.csv").write_text("a,b\n")
    wait_for(lambda: ingested(admin, database) == 2, timeout=60, what="the second file's task")
    assert daemon_connections(admin, database) == kept

    # PostgreSQL drops every connection of the daemon (a restart, a failover, a pooler).
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND application_name = %s",
        (database, DAEMON_APPLICATION),
    )
    wait_for(lambda: not daemon_connections(admin, database), what="the connections to go")

    (inbox / "second.csv").write_text("c,d\n")
    wait_for(lambda: ingested(admin, database) == 3, timeout=60, what="the third file's task")
    uploads = rows(admin, database, "SELECT pathname, size FROM ingest_upload ORDER BY id")
    assert uploads == [(str(inbox / name), 4) for name in ("first.csv", "again.csv", "second.csv")]

    # The status file is rewritten every second: wait until it counts the six deliveries.
    def status():
        shown = project.manage("inotifier_status")
        assert shown.returncode == 0, shown.stderr
        return shown.stdout if "delivered:      6" in shown.stdout else None

    shown = wait_for(status, timeout=30, what="the status to count the deliveries")
    # At their first attempt: the dropped connections were replaced before the events used them.
    assert "failed:         0" in shown
    assert "retried:        0" in shown

    # The admin shows the running daemon and each processor's journal to an operator.
    pid = project.watching()
    page = project.manage("shell", "--no-imports", "-c", ADMIN_PAGE)
    assert page.returncode == 0, page.stderr
    assert page.stdout.splitlines()[0] == "200"
    assert f"pid {pid}" in page.stdout or f">{pid}<" in page.stdout, page.stdout
    assert "django_task@" in page.stdout

    stopped = project.manage("inotifier_stop")
    assert stopped.returncode == 0, stopped.stderr
    # LOGGING sends the inotifier loggers to a file: the daemon's lines are there, as records
    # of Python's logging, and not on its stderr.
    log = (project.path / "inotifier.log").read_text()
    assert "inotifier.daemon INFO ready: 2 watches" in log
    assert "inotifier.daemon INFO stopped" in log
    assert "ready: 2 watches" not in project.daemon_stderr()
    worker.terminate()
    worker.communicate(timeout=30)
    assert (
        not os.path.exists(project.pid_file) or project.manage("inotifier_status").returncode == 3
    )
