"""inotifier: Linux file events for Django, from a Rust engine that never loses one.

The event mask constants have the kernel's values (those of ``<sys/inotify.h>`` and pyinotify);
``IN_READY`` is inotifier's own (a file is completely written), outside ``ALL_EVENTS``.
Add ``"inotifier"`` to ``INSTALLED_APPS`` for the management commands and system checks; this
module itself does not import Django. Without Django, ``watch`` (an iterator of events) and
``awatch`` (its asyncio counterpart) run the engine in the calling process.
"""

from inotifier._native import (
    ALL_EVENTS,
    IN_ACCESS,
    IN_ATTRIB,
    IN_CLOSE,
    IN_CLOSE_NOWRITE,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_DONT_FOLLOW,
    IN_EXCL_UNLINK,
    IN_IGNORED,
    IN_ISDIR,
    IN_MASK_ADD,
    IN_MASK_CREATE,
    IN_MODIFY,
    IN_MOVE,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONESHOT,
    IN_ONLYDIR,
    IN_OPEN,
    IN_Q_OVERFLOW,
    IN_READY,
    IN_UNMOUNT,
    mask_name,
    parse_mask,
    valid_mask_names,
)
from inotifier.event import Event
from inotifier.watch import AsyncWatchIterator, WatchIterator, awatch, watch

__all__ = [
    "ALL_EVENTS",
    "IN_ACCESS",
    "IN_ATTRIB",
    "IN_CLOSE",
    "IN_CLOSE_NOWRITE",
    "IN_CLOSE_WRITE",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_DONT_FOLLOW",
    "IN_EXCL_UNLINK",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_MASK_ADD",
    "IN_MASK_CREATE",
    "IN_MODIFY",
    "IN_MOVE",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_MOVE_SELF",
    "IN_ONESHOT",
    "IN_ONLYDIR",
    "IN_OPEN",
    "IN_Q_OVERFLOW",
    "IN_READY",
    "IN_UNMOUNT",
    "AsyncWatchIterator",
    "Event",
    "WatchIterator",
    "awatch",
    "mask_name",
    "parse_mask",
    "valid_mask_names",
    "watch",
]
