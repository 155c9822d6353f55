"""System checks of the app's settings: every problem :func:`inotifier.settings.inspect` finds
is an error with its id and a hint saying how to fix it.

| id | what |
|---|---|
| inotifier.E001 | ``INOTIFIER_WATCH_PATHS`` missing, not a list, or empty |
| inotifier.E002 | an entry is not a 3- or 4-tuple |
| inotifier.E003 | a path is not absolute |
| inotifier.E004 | a path does not exist or cannot be read |
| inotifier.E005 | an invalid event mask |
| inotifier.E006 | a processor that cannot be imported, is not a class nor a native processor |
| inotifier.E007 | options that are not a dict, or an unknown option |
| inotifier.E008 | an invalid option value (flag, glob, duration, retry) |
| inotifier.E009 | processor options that are not a JSON-serialisable dict |
| inotifier.E010 | ``INOTIFIER_DAEMON_STDOUT``/``STDERR`` not a path, or in a missing directory |
| inotifier.E011 | ``PROJECT_PATH`` not an existing directory |
| inotifier.E012 | ``INOTIFIER_LOG_LEVEL`` not error, warn, info, debug or trace |
| inotifier.E013 | ``INOTIFIER_DRAIN_TIMEOUT`` not a number of seconds >= 0 |
| inotifier.E014 | options a native processor refuses (log, jsonl, exec, webhook, brokers) |
| inotifier.E015 | ``INOTIFIER_WORKERS`` not a whole number from 1 to 1024 |
| inotifier.E016 | ``INOTIFIER_JOURNAL`` not a dict, unknown key, wrong type, directory missing |
| inotifier.E017 | two watches with the same processor and path and no distinct ``name`` |
"""

from django.core import checks

from inotifier import settings as inotifier_settings


def check_settings(app_configs=None, **kwargs):
    _, problems = inotifier_settings.inspect()
    return [checks.Error(problem.msg, hint=problem.hint, id=problem.id) for problem in problems]
