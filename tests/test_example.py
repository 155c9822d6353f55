"""The example project under example/, run for real: its migrations, its daemon through
manage.py, a file dropped in its inbox, the row its receiver writes and the admin page listing
it. The inbox, database, pid file and logs are moved to a temporary directory through the
settings' environment variables, so the repository's example/ is never written to."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from inotifier import _native

EXAMPLE_MANAGE = Path(__file__).resolve().parent.parent / "example" / "manage.py"
ADMIN_PASSWORD = "example-test-password"

# Logs in as the admin ensure_admin created and prints the changelist's status and HTML.
# setup_test_environment() lets the test client's host ("testserver") through ALLOWED_HOSTS.
CHANGELIST_SCRIPT = f"""
import json
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
client = Client()
assert client.login(username="admin", password={ADMIN_PASSWORD!r})
response = client.get("/admin/received/receivedfile/")
print(json.dumps({{"status": response.status_code, "html": response.content.decode()}}))
"""


class Example:
    """The example project with its inbox and state in ``root``; ends what it started by pid."""

    def __init__(self, root):
        self.inbox = root / "inbox"
        self.state = root / "state"
        self.inbox.mkdir()
        (self.state / "log").mkdir(parents=True)
        self.processes = []

    def env(self):
        env = dict(os.environ)
        env.update(
            # pytest-django set the test project's settings in this process's environment.
            DJANGO_SETTINGS_MODULE="exampleproject.settings",
            INOTIFIER_EXAMPLE_INBOX=str(self.inbox),
            INOTIFIER_EXAMPLE_STATE=str(self.state),
            INOTIFIER_EXAMPLE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            PYTHONUNBUFFERED="1",
        )
        return env

    def manage(self, *args):
        result = subprocess.run(
            [sys.executable, str(EXAMPLE_MANAGE), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def popen(self, *args):
        process = subprocess.Popen(
            [sys.executable, str(EXAMPLE_MANAGE), *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def daemon_running(self):
        """Running with its watches in place (the pid file alone is taken before them)."""
        report = _native.status(str(self.state / "inotifier.pid"))
        return report["running"] and report.get("state") == "running"

    def received_files(self):
        database = self.state / "db.sqlite3"
        with sqlite3.connect(database) as connection:
            return connection.execute(
                "SELECT path, size, renamed_from, event_id FROM received_receivedfile"
            ).fetchall()

    def end_everything(self):
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)


@pytest.fixture
def example(tmp_path):
    example = Example(tmp_path)
    yield example
    example.end_everything()


def test_the_example_records_ready_files_and_the_admin_lists_them(example):
    example.manage("migrate", "--noinput")
    daemon = example.popen("inotifier_start", "--foreground")
    wait_for(example.daemon_running, timeout=30, what="the example's daemon to start")

    # One file written in chunks (ready once closed and settled), one renamed from a .part
    # (ready at once, never under its temporary name).
    chunked = example.inbox / "chunked.csv"
    with open(chunked, "wb") as output:
        for chunk in (b"id,name\n", b"1,alpha\n", b"2,beta\n"):
            output.write(chunk)
            output.flush()
    part = example.inbox / "renamed.bin.part"
    part.write_bytes(b"\x00" * 1000)
    renamed = example.inbox / "renamed.bin"
    os.rename(part, renamed)

    wait_for(
        lambda: len(example.received_files()) >= 2,
        timeout=30,
        what="two ReceivedFile rows",
    )
    # Stopped before the final count, so that a duplicate or a row for the .part would be in.
    os.kill(daemon.pid, signal.SIGTERM)
    stdout, stderr = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, stderr
    assert f"Adding watch on {example.inbox}" in stdout

    rows = {
        path: (size, renamed_from, event_id)
        for path, size, renamed_from, event_id in example.received_files()
    }
    assert sorted(rows) == [str(chunked), str(renamed)]
    assert rows[str(chunked)][:2] == (len(b"id,name\n1,alpha\n2,beta\n"), "")
    assert rows[str(renamed)][:2] == (1000, str(part))
    assert all(event_id > 0 for _, _, event_id in rows.values())

    created = example.manage("ensure_admin")
    assert f"username admin, password {ADMIN_PASSWORD}" in created
    assert "existing superuser" in example.manage("ensure_admin")

    page = json.loads(example.manage("shell", "-c", CHANGELIST_SCRIPT).splitlines()[-1])
    assert page["status"] == 200
    assert str(chunked) in page["html"] and str(renamed) in page["html"]
    assert "2 received files" in page["html"]
