"""The ``django_task`` processor: every event enqueued as a Django task (``django.tasks`` on
Django 6, the ``django_tasks`` backport on 5.2), through a real daemon, real files and Django's
ImmediateBackend (the database backend and its worker: tests/test_production.py). Its checks,
through Django's check framework."""

import json

import pytest
from conftest import read_jsonl, wait_for
from django.core import checks
from inotifier import _native
from inotifier import settings as inotifier_settings

FLAKY = {"default": {"BACKEND": "recorder.backends.FlakyBackend", "QUEUES": ["default", "files"]}}


def inotifier_messages():
    return [m for m in checks.run_checks(tags=["inotifier"]) if m.id.startswith("inotifier.")]


def task_watch(project, options, **watch_options):
    return [
        str(project.watched),
        "IN_CLOSE_WRITE",
        "django_task",
        {"options": options, **watch_options},
    ]


def test_each_file_is_enqueued_as_a_task_with_the_fields_it_asks_for(project):
    project.extra_env["INOTIFIER_TEST_TASKS"] = json.dumps(FLAKY)
    project.watches = [
        task_watch(
            project,
            {
                "task": "recorder.tasks.record_file",
                "args": ["pathname"],
                "kwargs": {"kind": "maskname", "event_id": "id"},
                "queue_name": "files",
            },
        )
    ]
    started = project.start()
    assert started.returncode == 0, started.stderr
    names = [f"scan-{index}.pdf" for index in range(5)]
    for name in names:
        (project.watched / name).write_text(name)
    tasks = wait_for(
        lambda: (
            len(read_jsonl(project.output / "tasks.jsonl")) >= 5
            and read_jsonl(project.output / "tasks.jsonl")
        ),
        timeout=30,
        what="a task per file",
    )
    assert sorted(t["pathname"] for t in tasks) == sorted(str(project.watched / n) for n in names)
    assert {t["kind"] for t in tasks} == {"IN_CLOSE_WRITE"}
    assert {t["queue_name"] for t in tasks} == {"files"}
    assert len({t["event_id"] for t in tasks}) == 5
    assert all(isinstance(t["event_id"], int) for t in tasks)
    assert project.manage("inotifier_stop").returncode == 0


def test_the_whole_event_by_default_and_no_overflow_event_unless_asked(project, settings):
    settings.INOTIFIER_WATCH_PATHS = [
        (
            str(project.watched),
            "IN_CLOSE_WRITE",
            "django_task",
            {"options": {"task": "recorder.tasks.record_event"}},
        )
    ]
    (watch,), problems = inotifier_settings.inspect()
    assert problems == []
    assert watch.document()["mask"] == _native.IN_CLOSE_WRITE

    project.watches = [task_watch(project, {"task": "recorder.tasks.record_event"})]
    assert project.start().returncode == 0
    (project.watched / "a.txt").write_text("a")
    (record,) = wait_for(lambda: read_jsonl(project.output / "tasks.jsonl"), what="the task")
    event = record["event"]
    assert event["pathname"] == str(project.watched / "a.txt")
    assert event["maskname"] == "IN_CLOSE_WRITE"
    assert event["origin"] == "kernel"
    assert set(event) >= {"id", "mask", "path", "name", "dir", "cookie", "src_pathname", "time"}
    assert project.manage("inotifier_stop").returncode == 0


def test_a_failing_enqueue_is_retried_and_dead_lettered_with_its_error(project):
    project.extra_env["INOTIFIER_TEST_TASKS"] = json.dumps(FLAKY)
    away = project.output / "queue-away"
    away.touch()
    retry = {"attempts": 1000, "initial": 0.05, "max": 0.1}
    project.watches = [
        task_watch(project, {"task": "recorder.tasks.record_event"}, retry=retry, name="retried"),
        [
            str(project.watched),
            "IN_CLOSE_WRITE",
            "django_task",
            {
                "options": {"task": "recorder.tasks.record_event"},
                "retry": {"attempts": 2, "initial": 0.05},
                "name": "dead",
            },
        ],
    ]
    assert project.start().returncode == 0
    (project.watched / "while-away.txt").write_text("x")
    journal = str(project.path / "inotifier.journal")

    def dead():
        return _native.journal_list(journal, "dead", True, 10)

    (letter,) = wait_for(dead, timeout=30, what="the dead letter")
    assert "ConnectionError: the task queue is away" in letter["error"]
    assert str(letter["pathname"]) == str(project.watched / "while-away.txt")
    wait_for(
        lambda: "the task queue is away" in project.daemon_stderr(),
        what="the failure logged",
    )
    assert read_jsonl(project.output / "tasks.jsonl") == []

    # The queue is back: the retried watch's event goes through, once.
    away.unlink()
    (record,) = wait_for(
        lambda: read_jsonl(project.output / "tasks.jsonl"), timeout=30, what="the task"
    )
    assert record["event"]["pathname"] == str(project.watched / "while-away.txt")
    assert project.manage("inotifier_stop").returncode == 0
    assert len(read_jsonl(project.output / "tasks.jsonl")) == 1


@pytest.mark.parametrize(
    ("options", "expected", "words"),
    [
        ({"task": "recorder.tasks.nowhere"}, "inotifier.E018", "cannot be imported"),
        ({"task": "recorder.tasks.not_a_task"}, "inotifier.E018", "not a task"),
        ({}, "inotifier.E019", "needs the option 'task'"),
        ({"task": "recorder.tasks.record_event", "arg": ["id"]}, "inotifier.E019", "'arg'"),
        ({"task": "recorder.tasks.record_event", "args": ["file"]}, "inotifier.E019", "'file'"),
        (
            {"task": "recorder.tasks.record_event", "kwargs": {"a": "size"}},
            "inotifier.E019",
            "'size'",
        ),
        ({"task": "recorder.tasks.record_event", "queue_name": "other"}, "inotifier.E020", "other"),
        ({"task": "recorder.tasks.record_event", "priority": 1000}, "inotifier.E020", "priority"),
        (
            {"task": "recorder.tasks.record_event", "backend": "missing"},
            "inotifier.E020",
            "missing",
        ),
    ],
)
def test_the_checks_refuse_bad_task_options(settings, tmp_path, options, expected, words):
    settings.TASKS = FLAKY
    settings.INOTIFIER_WATCH_PATHS = [
        (str(tmp_path), "IN_READY", "django_task", {"options": options})
    ]
    (message,) = inotifier_messages()
    assert message.id == expected
    assert isinstance(message, checks.Error)
    assert words in message.msg
    assert "INOTIFIER_WATCH_PATHS[0]" in message.msg
    assert message.hint
