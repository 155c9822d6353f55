"""The ``django_task`` processor: every event enqueued as a Django task.

``(path, mask, "django_task", {"options": {"task": "myapp.tasks.ingest", ...}})``. The task is a
function decorated with ``@task``: ``django.tasks`` on Django 6, or the ``django_tasks`` backport
(``pip install django-tasks``) on 5.2. Options:

| option | default | meaning |
|---|---|---|
| ``task`` | required | the task's dotted path |
| ``args`` | ``["event"]`` | its positional arguments, each an event field |
| ``kwargs`` | ``{}`` | its keyword arguments: ``{"name": field}`` |
| ``queue_name``, ``priority``, ``backend`` | the task's | as ``Task.using()`` takes them |
| ``source`` | the host name | the value of the field ``source`` |

Event fields, as the ``celery`` processor names them: ``event`` (the whole event as a dict,
the JSON object of ``jsonl``), ``id``, ``pathname``, ``path``, ``name``, ``mask``, ``maskname``,
``dir``, ``cookie``, ``src_pathname``, ``origin``, ``time``, ``source``.

An event is acknowledged in the journal once ``enqueue()`` returned; an exception from it (the
database of the backend away, a refused argument) is retried and dead-lettered as any
processor's failure. What the task does is then the backend's to run and retry. An event
delivered again (a retry, a redelivery after a crash) is enqueued again: a task that must run
once per event checks the event's ``id``.

No maintained package turns file events into tasks, and the mapping is a few lines; the task
framework itself is Django's.
"""

from __future__ import annotations

import socket
from typing import Any

from django.utils.module_loading import import_string

from inotifier._native import Event

FIELDS = (
    "event",
    "id",
    "pathname",
    "path",
    "name",
    "mask",
    "maskname",
    "dir",
    "cookie",
    "src_pathname",
    "origin",
    "time",
    "source",
)
OPTIONS = ("task", "args", "kwargs", "queue_name", "priority", "backend", "source")
USING = ("queue_name", "priority", "backend")


class OptionsError(ValueError):
    """Options that cannot work: the check id, what is wrong, how to fix it."""

    def __init__(self, id: str, msg: str, hint: str) -> None:
        super().__init__(msg)
        self.id, self.msg, self.hint = id, msg, hint


def task_classes() -> tuple[type, ...]:
    """The ``Task`` classes of the task frameworks installed: Django's own (6.0 and later) and
    the ``django_tasks`` backport's."""
    found: list[type] = []
    for module in ("django.tasks", "django_tasks"):
        try:
            found.append(import_string(f"{module}.base.Task"))
        except ImportError:
            continue
    return tuple(found)


def _options_error(
    msg: str, hint: str = "See the django_task processor in docs/django.md."
) -> OptionsError:
    return OptionsError("inotifier.E019", msg, hint)


def _field(value: object, where: str) -> str:
    if value not in FIELDS:
        raise _options_error(
            f"{where} is {value!r}, not an event field.",
            f"Use one of {', '.join(FIELDS)}.",
        )
    return str(value)


def resolve(options: dict[str, Any]) -> tuple[Any, tuple[str, ...], dict[str, str], str]:
    """``(task, args, kwargs, source)`` of the processor's options, the task with its
    ``using()`` options applied. Raises :class:`OptionsError`; imports the task's module and
    asks its backend, but enqueues nothing."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise _options_error(
            f"unknown option(s) {', '.join(map(repr, unknown))} for the django_task processor.",
            f"Valid options: {', '.join(OPTIONS)}.",
        )
    dotted = options.get("task")
    if not isinstance(dotted, str) or not dotted:
        raise _options_error(
            "the django_task processor needs the option 'task', the dotted path of a task.",
            "Add {'task': 'myapp.tasks.ingest'}, a function decorated with @task.",
        )
    classes = task_classes()
    if not classes:
        raise OptionsError(
            "inotifier.E018",
            "the django_task processor needs Django's task framework, which is not installed.",
            "Use Django 6 (django.tasks), or pip install django-tasks on Django 5.2.",
        )
    try:
        task: Any = import_string(dotted)
    except ImportError as error:
        raise OptionsError(
            "inotifier.E018",
            f"the task {dotted!r} cannot be imported: {error}",
            "Give the dotted path of a function decorated with @task, e.g. 'myapp.tasks.ingest'.",
        ) from None
    if not any(isinstance(task, cls) for cls in classes):
        raise OptionsError(
            "inotifier.E018",
            f"{dotted!r} is {task!r}, not a task.",
            "Decorate the function with @task (from django.tasks, or django_tasks on 5.2).",
        )

    args = options.get("args", ["event"])
    if isinstance(args, str) or not isinstance(args, list):
        raise _options_error(f"args is {args!r}, not a list of event fields.")
    args = tuple(_field(value, f"args[{index}]") for index, value in enumerate(args))
    kwargs = options.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(key, str) for key in kwargs):
        raise _options_error(f"kwargs is {kwargs!r}, not a dict of argument name: event field.")
    kwargs = {key: _field(value, f"kwargs[{key!r}]") for key, value in kwargs.items()}
    source = options.get("source")
    if source is not None and (not isinstance(source, str) or not source):
        raise _options_error(f"source is {source!r}, not a non-empty string.")

    using = {key: options[key] for key in USING if key in options}
    if using:
        try:
            task = task.using(**using)
        except Exception as error:  # noqa: BLE001  the backend says what it refuses, its way
            raise OptionsError(
                "inotifier.E020",
                f"the task {dotted!r} refuses {using}: {type(error).__name__}: {error}",
                "Give a queue_name, priority and backend that the task's backend (TASKS) accepts.",
            ) from None
    return task, args, kwargs, source or socket.gethostname()


def event_dict(event: Event) -> dict[str, object]:
    """The event as the JSON object of the ``jsonl`` processor."""
    return {
        "id": event.id,
        "mask": event.mask,
        "maskname": event.maskname,
        "path": event.path,
        "name": event.name,
        "pathname": event.pathname,
        "dir": event.dir,
        "wd": event.wd,
        "cookie": event.cookie,
        "src_pathname": event.src_pathname,
        "synthetic": event.synthetic,
        "origin": event.origin,
        "time": event.time,
    }


def _value(event: Event, field: str, source: str) -> object:
    if field == "event":
        return event_dict(event)
    if field == "source":
        return source
    return getattr(event, field)


class TaskProcessor:
    """Enqueues one task per event; built by the daemon as ``TaskProcessor(**options)``."""

    #: As the native processors do, and unlike pyinotify-style classes: ``IN_Q_OVERFLOW`` only
    #: when the mask asks for it (a task per overflow would be handed the watched directory).
    receives_overflow = False

    def __init__(self, **options: Any) -> None:
        try:
            self.task, self.args, self.kwargs, self.source = resolve(options)
        except OptionsError as error:
            raise ValueError(f"{error.id}: {error.msg} {error.hint}") from None

    def __call__(self, event: Event) -> None:
        source = self.source
        self.task.enqueue(
            *(_value(event, field, source) for field in self.args),
            **{key: _value(event, field, source) for key, field in self.kwargs.items()},
        )
