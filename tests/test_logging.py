"""The daemon's messages as Python log records: a daemon started by ``manage.py inotifier_start``
with a LOGGING that sends ``inotifier`` to a file (testproject/logtools.py's FieldsFormatter
writes ``NAME LEVEL MESSAGE | {extra fields as JSON}``), and one without LOGGING, whose stderr
file keeps the daemon's own lines. Real daemons, real files, real Python logging."""

import json
import re
import sqlite3
import sys

import pytest
from conftest import pid_alive, read_jsonl, wait_for
from inotifier import _native

RECORDER = "recorder.record.RecordingProcessor"


def logging_config(log_file, handler="file", loggers=None):
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"fields": {"()": "testproject.logtools.FieldsFormatter"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "fields",
            },
            "raising": {"class": "testproject.logtools.RaisingHandler"},
        },
        "loggers": {
            "inotifier": {"handlers": [handler], "level": "INFO", "propagate": False},
            **(loggers or {}),
        },
    }


def records(log_file):
    """The file's records: ``(name, level, message, extra)``, whole lines only."""
    try:
        text = log_file.read_text()
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            continue
        head, _, extra = line.rstrip("\n").rpartition(" | ")
        name, level, message = head.split(" ", 2)
        found.append((name, level, message, json.loads(extra)))
    return found


def start(project):
    result = project.start()
    assert result.returncode == 0, result.stderr
    return project.started_pids[-1]


def stop(project, pid):
    result = project.manage("inotifier_stop")
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: not pid_alive(pid), what="the daemon to exit")


def test_the_daemon_logs_to_the_inotifier_loggers_with_fields_in_extra(project):
    log_file = project.output / "inotifier.log"
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(logging_config(log_file))
    project.watches = [
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "exec",
            {
                "options": {"argv": [sys.executable, "-c", "raise SystemExit(3)", "{pathname}"]},
                "retry": {"attempts": 2, "initial": 0.01, "max": 0.02},
            },
        ]
    ]
    pid = start(project)
    wait_for(
        lambda: any(
            r[:2] == ("inotifier.daemon", "INFO") and r[2].startswith("ready: 1 watches")
            for r in records(log_file)
        ),
        what="the start message on inotifier.daemon",
    )
    doomed = project.watched / "doomed.txt"
    doomed.write_text("x")

    def failures(level):
        return [
            r
            for r in records(log_file)
            if r[:2] == ("inotifier.processor.exec", level)
            and r[3].get("event_pathname") == str(doomed)
        ]

    retried = wait_for(lambda: failures("WARNING"), what="the retry warning")[0]
    assert retried[3]["processor"] == "exec"
    assert retried[3]["watch"] == str(project.watched)
    assert retried[3]["attempt"] == "1"
    assert retried[3]["event_maskname"] == "IN_CLOSE_WRITE"
    assert "exited with status 3" in retried[2], retried
    given_up = wait_for(lambda: failures("ERROR"), what="the giving up")[0]
    assert given_up[2].endswith("giving up on the event"), given_up
    assert given_up[3]["attempt"] == "2"

    stop(project, pid)
    # Handed over before the daemon exited.
    assert ("inotifier.daemon", "INFO", "stopped", {}) in records(log_file)
    # Python has them; stderr does not get them a second time.
    assert "ready:" not in project.daemon_stderr()
    assert "giving up" not in project.daemon_stderr()


def journal_events(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        return connection.execute("SELECT COUNT(*) FROM events").fetchone()[0]


@pytest.mark.parametrize("journal_level", ["DEBUG", "INFO"])
def test_records_below_the_loggers_level_are_not_emitted(project, journal_level):
    """The journal logs each pruning at DEBUG: it reaches the file only when the logger of
    ``inotifier.journal`` is at DEBUG, though the daemon's own level (INOTIFIER_LOG_LEVEL of the
    test project) is debug in both runs."""
    log_file = project.output / "inotifier.log"
    loggers = {"inotifier.journal": {"level": journal_level}}
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(
        logging_config(log_file, loggers=loggers)
    )
    journal = project.path / "inotifier.journal"
    project.extra_env["INOTIFIER_TEST_JOURNAL"] = json.dumps({"path": str(journal), "retain": 0})
    delivered = project.output / "delivered.jsonl"
    project.watches = [
        [str(project.watched), "IN_CLOSE_WRITE", "jsonl", {"options": {"path": str(delivered)}}]
    ]
    pid = start(project)
    for index in range(3):
        (project.watched / f"f{index}").write_text("x")
    wait_for(lambda: len(read_jsonl(delivered)) == 3, what="the three deliveries")
    wait_for(lambda: journal_events(journal) == 0, what="the journal to prune them")
    stop(project, pid)

    found = records(log_file)
    created = [r for r in found if r[:3] == ("inotifier.journal", "INFO", "journal: created")]
    assert created and created[0][3]["path"] == str(journal), found
    pruned = [r for r in found if r[2] == "journal: pruned acknowledged events"]
    if journal_level == "DEBUG":
        assert pruned and pruned[0][:2] == ("inotifier.journal", "DEBUG"), found
        assert int(pruned[0][3]["pruned"]) >= 1
    else:
        assert pruned == []
        assert not [r for r in found if r[1] == "DEBUG"], found


def test_without_logging_the_daemon_writes_its_own_lines_to_stderr(project):
    project.watches = [[str(project.watched), "IN_CLOSE_WRITE", RECORDER]]
    pid = start(project)
    (project.watched / "a").write_text("x")
    wait_for(lambda: project.events(), what="the delivery")
    stop(project, pid)
    lines = project.daemon_stderr().splitlines()
    # tracing-subscriber's fmt lines, as the daemon always wrote them: time, level, message.
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"
    assert any(
        re.fullmatch(rf"{stamp}  INFO ready: 1 watches, \d+ kernel watches, pid {pid}", line)
        for line in lines
    ), lines
    assert any(re.fullmatch(rf"{stamp}  INFO stopped", line) for line in lines), lines


def test_a_handler_that_raises_does_not_stop_deliveries(project):
    log_file = project.output / "unused.log"
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(
        logging_config(log_file, handler="raising")
    )
    project.watches = [[str(project.watched), "IN_CLOSE_WRITE", RECORDER]]
    pid = start(project)
    names = [f"f{index:02}" for index in range(20)]
    for name in names:
        (project.watched / name).write_text("x")
    wait_for(lambda: {e["name"] for e in project.events()} == set(names), what="every delivery")
    assert project.watching() == pid
    stop(project, pid)
    stderr = project.daemon_stderr()
    assert "a Python logging handler failed on a record of inotifier.daemon" in stderr
    assert "RuntimeError: this handler always fails (inotifier.daemon)" in stderr


def test_a_record_logged_with_the_gil_held_reaches_python(project):
    """A Python processor's ``close()`` fails: the daemon logs it on the thread that holds the
    GIL for the call. Neither a deadlock nor a lost record."""
    log_file = project.output / "inotifier.log"
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(logging_config(log_file))
    project.watches = [
        [str(project.watched), "IN_CLOSE_WRITE", "testproject.logtools.FailingClose"]
    ]
    pid = start(project)
    stop(project, pid)
    failed = [
        r for r in records(log_file) if r[2].startswith("close() of a Python processor failed")
    ]
    assert failed and failed[0][:2] == ("inotifier.processor.python", "ERROR"), records(log_file)
    assert "RuntimeError: close() fails on purpose" in failed[0][2]


@pytest.mark.parametrize(
    ("target", "processor", "name"),
    [
        ("inotifier_daemon::lifecycle", None, "inotifier.daemon"),
        ("inotifier_daemon::router", "webhook", "inotifier.processor.webhook"),
        ("inotifier_daemon::journal", None, "inotifier.journal"),
        ("inotifier_journal::journal", None, "inotifier.journal"),
        ("inotifier_core::tree::scan", None, "inotifier.engine"),
        ("inotifier_sinks::retry", "jsonl", "inotifier.processor.jsonl"),
        ("inotifier_sinks::exec", None, "inotifier.processor.exec"),
        ("inotifier_brokers::celery::message", None, "inotifier.processor.celery"),
        ("inotifier_brokers::redis_stream", None, "inotifier.processor.redis_stream"),
        ("inotifier_brokers::jetstream", None, "inotifier.processor.jetstream"),
        ("inotifier_brokers::link", None, "inotifier.processor"),
        ("inotifier_brokers::link", "celery", "inotifier.processor.celery"),
        (
            "inotifier_sinks::retry",
            "myapp.processors.Upload",
            "inotifier.processor.myapp.processors.Upload",
        ),
        ("_native::processor", None, "inotifier.processor.python"),
        ("async_nats::connector", None, "inotifier.lib"),
    ],
)
def test_logger_names(target, processor, name):
    assert _native.logger_name(target, processor) == name


@pytest.mark.parametrize(
    ("field", "key"),
    [
        ("attempt", "attempt"),
        ("event.pathname", "event_pathname"),
        ("name", "field_name"),
        ("msg", "field_msg"),
        ("process", "field_process"),
        ("module", "field_module"),
        ("message", "field_message"),
        ("thread.name", "thread_name"),
    ],
)
def test_fields_that_a_log_record_has_already_are_renamed(field, key):
    assert _native.log_extra_key(field) == key


def test_a_python_processor_logs_on_a_logger_of_its_own_name(project):
    """A Python processor's failed attempt (retried) goes to
    ``inotifier.processor.<its dotted name>``, so that LOGGING can set each processor's level:
    here that one's is ERROR, so its WARNING is dropped while another logger's passes."""
    log_file = project.output / "inotifier.log"
    quiet = {"inotifier.processor.recorder.record.FailingOnce": {"level": "ERROR"}}
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(logging_config(log_file))
    project.watches = [
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "recorder.record.FailingOnce",
            {"retry": {"attempts": 3, "initial": 0.01}},
        ]
    ]
    pid = start(project)
    (project.watched / "a.txt").write_text("a")
    wait_for(lambda: len(project.events()) == 1, what="the second attempt to succeed")
    stop(project, pid)
    retried = [r for r in records(log_file) if r[1] == "WARNING" and "first attempt" in r[2]]
    assert retried, records(log_file)
    assert {r[0] for r in retried} == {"inotifier.processor.recorder.record.FailingOnce"}

    # The same with that logger at ERROR: the retry's WARNING is not there.
    log_file.unlink()
    project.extra_env["INOTIFIER_TEST_LOGGING"] = json.dumps(
        logging_config(log_file, loggers=quiet)
    )
    pid = start(project)
    (project.watched / "b.txt").write_text("b")
    wait_for(lambda: len(project.events()) == 2, what="the second file")
    stop(project, pid)
    assert not [r for r in records(log_file) if "first attempt" in r[2]], records(log_file)
    assert any(r[0] == "inotifier.daemon" for r in records(log_file))
