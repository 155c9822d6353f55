"""Watching without Django: ``watch`` (an iterator) and ``awatch`` (an async iterator).

Both yield one ``inotifier.Event`` at a time, in the order the engine delivered them, with every
event the kernel sent (and those the engine synthesized: files created in a new directory before
its watch landed, the changes a queue overflow dropped). Unlike watchfiles, nothing is merged into
sets: a file created, written and deleted yields those three events, moves stay paired
(``src_pathname``), and ``mask`` says exactly what happened. Events are read from the kernel in
batches; ``event.id`` increases across them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

from inotifier._native import ALL_EVENTS, Event, Watcher

if TYPE_CHECKING:
    from inotifier._native import AnyPath, Mask


class StopEvent(Protocol):
    """A ``threading.Event`` or ``asyncio.Event``: anything with ``is_set()``."""

    def is_set(self) -> bool: ...


# The longest a wait blocks without looking at stop_event or letting Ctrl-C through.
_SLICE_SECONDS = 0.1


def _watcher(
    paths: tuple[AnyPath, ...],
    mask: Mask,
    recursive: bool,
    exclude: Iterable[str],
    include: Iterable[str],
    settle: float | None,
    temp_patterns: Iterable[str] | None,
) -> Watcher:
    if not paths:
        raise TypeError("watch() needs at least one path")
    return Watcher(
        [os.fsencode(path) for path in paths],
        mask,
        recursive=recursive,
        exclude=list(exclude),
        include=list(include),
        settle=settle,
        temp_patterns=None if temp_patterns is None else list(temp_patterns),
    )


class _Waiting:
    """When to give up: ``stop_event`` set, or ``timeout`` seconds without an event."""

    def __init__(self, stop_event: StopEvent | None, timeout: float | None) -> None:
        self.stop_event = stop_event
        self.timeout = timeout
        self.last_event = time.monotonic()

    def stopped(self) -> bool:
        return self.stop_event is not None and self.stop_event.is_set()

    def timed_out(self) -> bool:
        return self.timeout is not None and time.monotonic() - self.last_event >= self.timeout

    def slice_ms(self) -> int:
        seconds = _SLICE_SECONDS
        if self.timeout is not None:
            left = self.timeout - (time.monotonic() - self.last_event)
            seconds = max(0.0, min(seconds, left))
        return int(seconds * 1000)

    def got_events(self) -> None:
        self.last_event = time.monotonic()


class _Events:
    """What both iterators share: the watcher, when to give up, and the batch being handed out."""

    def __init__(
        self, watcher: Watcher, stop_event: StopEvent | None, timeout: float | None
    ) -> None:
        self._watcher = watcher
        self._waiting = _Waiting(stop_event, timeout)
        self._pending: list[Event] = []

    def _stop_requested(self) -> bool:
        # Looked at before every event, so that a stop is not delayed by a large batch.
        if self._waiting.stopped():
            self.close()
            return True
        return False

    def _ended(self, batch: list[Event] | None) -> bool:
        """Takes what a wait returned; true when the iteration is over."""
        if batch is None:
            return True
        if batch:
            self._waiting.got_events()
            # Popped from the end: reversed once per batch.
            self._pending = batch[::-1]
        elif self._waiting.timed_out():
            # Only after a wait came back empty: events already queued always count.
            self.close()
            return True
        return False

    def close(self) -> None:
        """Stops the engine and releases its inotify instance; the iteration ends. Idempotent."""
        self._pending = []
        self._watcher.close()

    @property
    def closed(self) -> bool:
        return self._watcher.closed

    def __del__(self) -> None:
        # ``for event in watch(...): break`` drops the iterator at once (CPython): the engine
        # stops then, not whenever the Watcher object happens to be collected.
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.close()


class WatchIterator(_Events):
    """What ``watch`` returns: an iterator of events and a context manager that closes it."""

    def __iter__(self) -> WatchIterator:
        return self

    def __next__(self) -> Event:
        while True:
            if self._stop_requested():
                raise StopIteration
            if self._pending:
                return self._pending.pop()
            # Waits with the GIL released; Ctrl-C is seen between slices.
            if self._ended(self._watcher.next_batch(self._waiting.slice_ms())):
                raise StopIteration

    def __enter__(self) -> WatchIterator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def watch(
    *paths: AnyPath,
    mask: Mask = ALL_EVENTS,
    recursive: bool = False,
    exclude: Iterable[str] = (),
    include: Iterable[str] = (),
    settle: float | None = None,
    temp_patterns: Iterable[str] | None = None,
    stop_event: StopEvent | None = None,
    timeout: float | None = None,
) -> WatchIterator:
    """Watches ``paths`` and yields each ``inotifier.Event`` as it comes.

    The watches are in place when ``watch`` returns (errors are raised there), so nothing that
    happens after the call is missed, even before the first ``next()``::

        for event in inotifier.watch("/srv/uploads", mask="IN_CLOSE_WRITE|IN_MOVED_TO",
                                     recursive=True):
            print(event.maskname, event.pathname)

    ``paths``: directories or files (``str``, ``bytes`` or path-like). ``mask``: an int (the
    ``IN_*`` constants), a str (``"IN_CREATE|IN_DELETE"``, ``"create,delete"``) or a list of both;
    add ``IN_READY`` for "a file is completely written", tuned by ``settle`` (seconds a file closed
    after writing must stay untouched, default 0.2) and ``temp_patterns`` (names of temporary
    files, default ``*.part``, ``*.tmp``, ``*.crdownload``, ``.*.swp``). ``recursive``: the whole
    tree, directories created later included. ``exclude``/``include``: globs (a pattern without
    ``/`` matches a name at any depth, one with ``/`` the path relative to the watched path).

    It ends when ``stop_event`` (a ``threading.Event``) is set, after ``timeout`` seconds without
    an event (``None``: never), on ``close()``, or when the loop is left: ``break``, an exception
    or leaving a ``with`` block stops the engine. Ctrl-C interrupts the wait within 0.1 s.

    Raises ``FileNotFoundError``/``PermissionError`` for a path, ``OSError`` (errno ENOSPC or
    EMFILE) when out of inotify watches or instances, ``ValueError`` for a bad mask or glob; the
    message says what to do.
    """
    watcher = _watcher(paths, mask, recursive, exclude, include, settle, temp_patterns)
    return WatchIterator(watcher, stop_event, timeout)


class AsyncWatchIterator(_Events):
    """What ``awatch`` returns: an async iterator of events and an async context manager."""

    def __aiter__(self) -> AsyncWatchIterator:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._stop_requested():
                raise StopAsyncIteration
            if self._pending:
                return self._pending.pop()
            try:
                batch = await asyncio.to_thread(self._watcher.next_batch, self._waiting.slice_ms())
            except BaseException:
                # Cancelled (or failed): the thread's wait is still running; closing stops the
                # engine, which ends that wait at once and releases the inotify instance.
                self.close()
                raise
            if self._ended(batch):
                raise StopAsyncIteration

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> AsyncWatchIterator:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def awatch(
    *paths: AnyPath,
    mask: Mask = ALL_EVENTS,
    recursive: bool = False,
    exclude: Iterable[str] = (),
    include: Iterable[str] = (),
    settle: float | None = None,
    temp_patterns: Iterable[str] | None = None,
    stop_event: StopEvent | None = None,
    timeout: float | None = None,
) -> AsyncWatchIterator:
    """``watch`` for asyncio: an async iterator of ``inotifier.Event``, same options::

        async for event in inotifier.awatch("/srv/uploads", recursive=True):
            print(event.maskname, event.pathname)

    The kernel is waited on in a thread (``asyncio.to_thread``), in slices of 0.1 s, so the event
    loop never blocks. Cancelling the task that iterates, ``aclose()``, ``break`` or leaving an
    ``async with`` block stops the engine. ``stop_event`` may be a ``threading.Event`` or an
    ``asyncio.Event`` (anything with ``is_set()``).
    """
    watcher = _watcher(paths, mask, recursive, exclude, include, settle, temp_patterns)
    return AsyncWatchIterator(watcher, stop_event, timeout)
