"""Helpers of the tests: the test project's manage.py in a subprocess, waiting on conditions
with deadlines, ending every daemon a test started by its pid, and skipping the tests marked
``needs_root`` for any user but root."""

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from inotifier import _native

TESTS_DIR = Path(__file__).resolve().parent
MANAGE = TESTS_DIR / "manage.py"


@contextlib.contextmanager
def inotify_limit(name, value):
    """Sets /proc/sys/fs/inotify/NAME for the block, holding the machine-wide test lock the
    Rust tests use (inotifier-test-support), so that none of them runs meanwhile."""
    lock_path = (
        "/run/inotifier-tests.lock" if os.path.isdir("/run") else "/tmp/inotifier-tests.lock"
    )
    limit = Path("/proc/sys/fs/inotify") / name
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = limit.read_text()
        limit.write_text(str(value(previous)))
        try:
            yield
        finally:
            limit.write_text(previous)


def wait_for(condition, timeout=10.0, interval=0.02, what="the condition"):
    """Polls ``condition`` until it returns a true value (which is returned) or fails the test
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_jsonl(path):
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    # A line being written by the daemon may be incomplete: only whole lines count.
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours has exited too.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


class Project:
    """One test's Django project: its PROJECT_PATH (pid file, daemon output), a directory to
    watch, an output directory for the recorder, and the daemons started from it."""

    def __init__(self, root):
        self.path = root / "project"
        self.watched = root / "watched"
        self.output = root / "output"
        for directory in (self.path, self.watched, self.output):
            directory.mkdir()
        self.watches = []
        # False: no PROJECT_PATH, so the pid file goes to the private runtime directory.
        self.use_project_path = True
        self.extra_env = {}
        self.started_pids = []
        self.processes = []

    @property
    def pid_file(self):
        return self.path / "inotifier.pid"

    def env(self):
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="testproject.settings",
            INOTIFIER_TEST_OUTPUT_DIR=str(self.output),
            INOTIFIER_TEST_WATCHES=json.dumps(self.watches),
            PYTHONUNBUFFERED="1",
        )
        if self.use_project_path:
            env["INOTIFIER_TEST_PROJECT_PATH"] = str(self.path)
        env.update(self.extra_env)
        return env

    def manage(self, *args, timeout=60):
        """Runs ``manage.py ARGS`` to completion."""
        return subprocess.run(
            [sys.executable, str(MANAGE), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,  # the tests assert on the exit status
        )

    def start(self):
        """``manage.py inotifier_start``; remembers the daemon's pid for the teardown."""
        result = self.manage("inotifier_start")
        started = re.search(r"inotifier started: pid (\d+)", result.stdout)
        if started:
            self.started_pids.append(int(started.group(1)))
        return result

    def popen(self, *args, env=None):
        """``manage.py ARGS`` running in the background (ended by its pid at teardown), with
        ``env`` added to the project's environment."""
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), *args],
            env={**self.env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    def watching(self):
        """The daemon's pid once its watches are in place (its status says ``running``: the
        pid file alone is taken before the watches are added), else None."""
        report = _native.status(str(self.pid_file))
        if report["running"] and report.get("state") == "running":
            return report["pid"]
        return None

    def events(self):
        return read_jsonl(self.output / "events.jsonl")

    def signals(self):
        return read_jsonl(self.output / "signals.jsonl")

    def daemon_stderr(self):
        path = self.path / "daemon.err"
        return path.read_text() if path.exists() else ""

    def end_everything(self):
        for process in self.processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)
        for pid in self.started_pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
                wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} to end")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test marked ``needs_root(WHY)`` is skipped unless run as root, with the reason the Rust
    tests give (inotifier-test-support's privileges.rs); first, so that no fixture of a skipped
    test runs. The effective uid is what the kernel checks, so it is what is asked."""
    marker = item.get_closest_marker("needs_root")
    if marker is not None and os.geteuid() != 0:
        (why,) = marker.args
        pytest.skip(f"needs root ({why}; run ./scripts/test.sh as root or with sudo)")


@pytest.fixture
def project(tmp_path):
    project = Project(tmp_path)
    yield project
    project.end_everything()


# The broker tests' fixtures: private brokers, and the daemon binary run from a TOML config.
from services import private_nats, private_redis  # noqa: E402, F401

REPO = TESTS_DIR.parent


@pytest.fixture(scope="session")
def inotifier_bin():
    """The ``inotifier`` binary of this tree (``INOTIFIER_BIN`` names another), built when
    missing."""
    given = os.environ.get("INOTIFIER_BIN")
    if given:
        return Path(given)
    subprocess.run(
        ["cargo", "build", "--quiet", "--locked", "-p", "inotifier-cli", "--bin", "inotifier"],
        cwd=REPO,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "inotifier"


class TomlDaemon:
    """``inotifier run --config FILE`` in the background, with its config written from TOML
    text; ended by its pid at teardown."""

    def __init__(self, binary, root):
        self.binary = binary
        self.root = root
        self.config = root / "inotifier.toml"
        self.pid_file = root / "inotifier.pid"
        self.stderr_path = root / "daemon.err"
        self.process = None

    def write(self, text):
        self.config.write_text(f'[daemon]\npid_file = "{self.pid_file}"\n{text}')

    def start(self, env=None):
        assert self.process is None or self.process.poll() is not None
        with open(self.stderr_path, "ab") as stderr:
            self.process = subprocess.Popen(
                [str(self.binary), "run", "--config", str(self.config)],
                env={**os.environ, **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        wait_for(self.running, timeout=30, what="the daemon to run its watches")

    def running(self):
        if self.process.poll() is not None:
            pytest.fail(f"the daemon exited with {self.process.returncode}:\n{self.stderr()}")
        report = _native.status(str(self.pid_file))
        return report["running"] and report.get("state") == "running"

    def status(self):
        return _native.status(str(self.pid_file))

    def stop(self, timeout=60):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=timeout)
        return self.process.returncode

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stderr(self):
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""


@pytest.fixture
def toml_daemon(inotifier_bin, tmp_path):
    daemon = TomlDaemon(inotifier_bin, tmp_path)
    try:
        yield daemon
    finally:
        daemon.kill()
