"""The receiver of ``inotifier.signals.in_ready``. It runs in the daemon's process, on its
worker threads (each with its own database connection)."""

import os

from received.models import ReceivedFile


def displayable(name):
    """A file name as text the database accepts. Names are bytes: one that is not UTF-8
    reaches Python with surrogate escapes, which SQLite refuses; its odd bytes are shown as
    ``\\xNN`` instead."""
    return os.fsencode(name).decode("utf-8", errors="backslashreplace")


def record_ready_file(sender, event, **kwargs):
    try:
        size = os.stat(event.pathname).st_size
    except FileNotFoundError:
        # Deleted or moved away between its ready event and now: still received.
        size = None
    ReceivedFile.objects.create(
        path=displayable(event.pathname),
        size=size,
        renamed_from=displayable(event.src_pathname or ""),
        event_id=event.id,
    )
