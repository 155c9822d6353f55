"""System checks of the app's settings: every problem :func:`inotifier.settings.inspect` finds,
with its id and a hint saying how to fix it. A mistake in the settings is an error; a fact of
the machine the checks run on is a warning, so that ``migrate``, ``collectstatic`` or a
container build on a host without the watched paths pass, while ``inotifier_start`` refuses to
start on either.

| id | what |
|---|---|
| inotifier.E001 | ``INOTIFIER_WATCH_PATHS`` missing, not a list, or empty |
| inotifier.E002 | an entry is not a 3- or 4-tuple |
| inotifier.E003 | a path is not absolute |
| inotifier.E005 | an invalid event mask |
| inotifier.E006 | a processor that cannot be imported, is not a class nor a native processor |
| inotifier.E007 | options that are not a dict, or an unknown option |
| inotifier.E008 | an invalid option value (flag, glob, duration, retry) |
| inotifier.E009 | processor options that are not a JSON-serialisable dict |
| inotifier.E010 | ``INOTIFIER_DAEMON_STDOUT``/``STDERR`` not a path |
| inotifier.E011 | ``PROJECT_PATH`` not a path |
| inotifier.E012 | ``INOTIFIER_LOG_LEVEL`` not error, warn, info, debug or trace |
| inotifier.E013 | ``INOTIFIER_DRAIN_TIMEOUT`` not a number of seconds >= 0 |
| inotifier.E014 | options a native processor refuses (log, jsonl, exec, webhook, brokers) |
| inotifier.E015 | ``INOTIFIER_WORKERS`` not a whole number from 1 to 1024 |
| inotifier.E016 | ``INOTIFIER_JOURNAL`` not a dict, an unknown key, a wrong type |
| inotifier.E017 | two watches with the same processor and path and no distinct ``name`` |
| inotifier.E018 | ``django_task``: the task not importable, not a task, or no task framework |
| inotifier.E019 | ``django_task``: an unknown option, or ``args``/``kwargs`` not event fields |
| inotifier.E020 | ``django_task``: ``queue_name``, ``priority``, ``backend`` refused by it |
| inotifier.E021 | ``INOTIFIER_METRICS`` not a dict with ``listen``, or not an address and port |
| inotifier.W001 | a watched path does not exist on this machine |
| inotifier.W002 | a watched path cannot be read by this user |
| inotifier.W003 | the directory of ``INOTIFIER_DAEMON_STDOUT``/``STDERR`` does not exist |
| inotifier.W004 | ``PROJECT_PATH`` is not an existing directory |
| inotifier.W005 | the journal's directory does not exist |
| inotifier.W006 | the pid file's directory is not private to this user |
| inotifier.W007 | a native processor's file or environment variable missing on this machine |

(``inotifier.E004``, a watched path missing or unreadable, became W001 and W002.)
"""

import contextlib
import contextvars

from django.core import checks

from inotifier import settings as inotifier_settings

# The inspection a command made already, for the checks it runs next to report (so that the
# settings are read once per command, and what the checks say is what the command acts on).
_inspection = contextvars.ContextVar("inotifier_inspection", default=None)


@contextlib.contextmanager
def reporting(inspection):
    """Within the block, the checks report ``inspection`` (``inotifier.settings.inspect()``'s
    result) instead of inspecting the settings again."""
    token = _inspection.set(inspection)
    try:
        yield
    finally:
        _inspection.reset(token)


def messages(problems):
    """The check messages of :class:`inotifier.settings.Problem` s."""
    return [
        (checks.Warning if problem.warning else checks.Error)(
            problem.msg, hint=problem.hint, id=problem.id
        )
        for problem in problems
    ]


def check_settings(app_configs=None, **kwargs):
    inspection = _inspection.get()
    _, problems = inspection if inspection is not None else inotifier_settings.inspect()
    return messages(problems)
