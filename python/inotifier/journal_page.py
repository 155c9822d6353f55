"""What the admin's journal page shows, read as ``manage.py inotifier_status`` and
``inotifier_journal`` read it (the same native functions): the daemon, each processor's counts,
and one page of one processor's pending or dead-lettered events. Nothing here raises for a
journal that is missing, unreadable or disabled, or for a stopped daemon: each becomes a
message the page shows in place of what it could not read."""

import datetime
import os

from django.core.exceptions import ImproperlyConfigured
from django.core.paginator import Paginator

from inotifier import _native, journal
from inotifier import settings as inotifier_settings
from inotifier.management.commands.inotifier_stop import not_running_message

# The daemon's counters, in the order inotifier_status prints them.
COUNTERS = ("events_seen", "delivered", "failed", "retried", "batches", "behind")


def daemon():
    """``_native.status`` of the settings' pid file, with ``pid_file``, ``counters`` (label,
    value) and, when it does not run or cannot be asked, ``message``."""
    try:
        pid_file = inotifier_settings.pid_file()
    except ImproperlyConfigured as error:
        return {"running": False, "message": str(error), "counters": []}
    try:
        report = _native.status(str(pid_file))
    except (_native.DaemonError, OSError) as error:
        return {"running": False, "message": str(error), "counters": [], "pid_file": pid_file}
    report["pid_file"] = pid_file
    if not report["running"]:
        report["message"] = not_running_message(pid_file, report["stale_pid"])
    report["counters"] = [(key.replace("_", " "), report[key]) for key in COUNTERS if key in report]
    if report.get("uptime") is not None:
        report["started"] = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=report["uptime"]
        )
    return report


def summary():
    """``(path, rows, message)``: the journal's path (None when the settings name none), its
    per-processor summary (empty when unreadable), and why it could not be read, or None."""
    try:
        path = journal.path()
    except journal.Unavailable as error:
        return None, [], str(error)
    try:
        return path, _native.journal_summary(path), None
    except RuntimeError as error:
        return path, [], str(error)


class Entries:
    """A processor's pending or dead-lettered events, for Django's Paginator: the count from
    the summary, each page read with ``_native.journal_list`` at its offset."""

    def __init__(self, path, processor, dead, count):
        self.path = path
        self.processor = processor
        self.dead = dead
        self._count = count

    def count(self):
        return self._count

    def __len__(self):
        return self._count

    def __getitem__(self, window):
        start, stop = window.start or 0, window.stop
        rows = _native.journal_list(self.path, self.processor, self.dead, stop - start, start)
        return [entry(row) for row in rows]


def entry(row):
    """A row of ``_native.journal_list`` as the page shows it: the path printable as
    ``inotifier journal list`` prints it, the time as an aware datetime."""
    return {
        **row,
        "pathname": journal.printable(os.fsencode(row["pathname"])),
        "time": datetime.datetime.fromtimestamp(row["time_ns"] / 1e9, datetime.timezone.utc),
    }


def page(path, processor, dead, count, number, per_page):
    """``(page, message)``: page ``number`` (clamped to the last) of ``processor``'s entries,
    or None and why it could not be read."""
    paginator = Paginator(Entries(path, processor["key"], dead, count), per_page)
    try:
        return paginator.get_page(number), None
    except RuntimeError as error:
        return None, str(error)
