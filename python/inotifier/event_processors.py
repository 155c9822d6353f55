"""Event processors: pyinotify's ``ProcessEvent`` dispatch, and the processors shipped with the
app.

A processor named in ``INOTIFIER_WATCH_PATHS`` is instantiated once per watch as
``Processor(**options)`` (the entry's ``"options"``), which ``ProcessEvent`` hands to
``my_init``; then it is called with every :class:`inotifier.Event`. Any callable class works,
so classes written for pyinotify (subclasses of ``pyinotify.ProcessEvent``) work unchanged.

Calls happen on the daemon's worker thread, one event at a time as in pyinotify, a batch of
events per GIL acquisition. With ``INOTIFIER_WORKERS`` above 1, different files are processed
concurrently (the events of one file stay in order), so processors must be thread-safe. An
exception is logged with its traceback and the event is retried according to
the watch's retry policy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from django.dispatch import Signal

from inotifier import signals
from inotifier._native import IN_ISDIR, Event, mask_name

#: What a processor is: called with each event (its return value is ignored, except by
#: ``pevent``, where a true value stops the event there).
Processor = Callable[[Event], object]


class ProcessEvent:
    """pyinotify's base class: ``process_<MASKNAME>`` (``process_IN_CLOSE_WRITE``), else the
    family's ``process_IN_<FAMILY>`` (``process_IN_CLOSE``), else ``process_default``.

    ``pevent``, as in pyinotify, is a processor called first; when it returns true the event
    goes no further.
    """

    #: Bound methods by event mask, filled on first use: the lookup below runs once per kind
    #: of event, not once per event.
    _dispatch: dict[int, Processor] | None = None
    pevent: Processor | None = None

    def __init__(self, pevent: Processor | None = None, **kwargs: Any) -> None:
        self.pevent = pevent
        self.my_init(**kwargs)

    def my_init(self, **kwargs: Any) -> None:
        """Override to take the processor's options (the watch's ``"options"`` dict)."""
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} takes no options, got {sorted(kwargs)}; "
                "override my_init(**kwargs) to accept them"
            )

    def __call__(self, event: Event) -> object:
        pevent = self.pevent
        if pevent is not None and pevent(event):
            return None
        dispatch = self._dispatch
        if dispatch is None:
            dispatch = self._dispatch = {}
        method = dispatch.get(event.mask)
        if method is None:
            method = dispatch[event.mask] = self._method_for(event.mask)
        return method(event)

    def _method_for(self, mask: int) -> Processor:
        maskname = mask_name(mask & ~IN_ISDIR)
        method = getattr(self, f"process_{maskname}", None)
        if method is None and maskname.count("_") >= 2:
            family = "_".join(maskname.split("_")[:2])
            method = getattr(self, f"process_{family}", None)
        return method if method is not None else self.process_default

    def process_default(self, event: Event) -> object:
        """Called for events without a method of their own; does nothing."""
        return None

    def close(self) -> None:
        """Called once when the daemon stops or the watch goes, after the last event."""


_signal_by_mask: dict[int, Signal | None] = {}


def signal_for(event: Event) -> Signal | None:
    """The signal of ``event`` (``in_create`` for ``IN_CREATE|IN_ISDIR``), or None."""
    mask = event.mask
    try:
        return _signal_by_mask[mask]
    except KeyError:
        signal = _signal_by_mask[mask] = signals.BY_EVENT_NAME.get(mask_name(mask & ~IN_ISDIR))
        return signal


class AllEventsPrinter(ProcessEvent):
    """Prints every event on the daemon's stdout (``INOTIFIER_DAEMON_STDOUT``)."""

    def process_default(self, event: Event) -> None:
        print(repr(event), flush=True)
        sys.stdout.flush()


class AllEventsSignaler(ProcessEvent):
    """Sends the signal of every event (``in_create``, ``in_close_write``, ..., ``in_ready``)."""

    def process_default(self, event: Event) -> None:
        signal = signal_for(event)
        if signal is not None:
            signal.send(sender=self, event=event)


class CreateSignaler(ProcessEvent):
    """Sends ``in_create`` for every ``IN_CREATE``."""

    def process_IN_CREATE(self, event: Event) -> None:
        signals.in_create.send(sender=self, event=event)


class ReadySignaler(ProcessEvent):
    """Sends ``in_ready`` when a file is completely written (watch with ``IN_READY``)."""

    def process_IN_READY(self, event: Event) -> None:
        signals.in_ready.send(sender=self, event=event)


class CreateViaChunksSignaler(ProcessEvent):
    """Sends ``in_create`` once a file is complete, for uploads written in chunks to a temporary
    name and then renamed: the creation of ``x.part`` is ignored, and its rename to ``x`` sends
    ``in_create`` with the rename's event (an ``IN_MOVED_TO`` whose ``src_pathname`` is the
    ``.part``). A file created under its final name sends ``in_create`` at once.

    Watch with ``IN_CREATE|IN_MOVED_TO``: inotifier pairs moves itself, so ``IN_MOVED_FROM``
    is not needed. Option ``suffix`` (default ``".part"``) names the temporary files.
    """

    def my_init(self, suffix: str = ".part", **kwargs: Any) -> None:
        super().my_init(**kwargs)
        self.suffix = suffix

    def _temporary(self, name: str) -> bool:
        return name.endswith(self.suffix)

    def process_IN_CREATE(self, event: Event) -> None:
        if not self._temporary(event.name):
            signals.in_create.send(sender=self, event=event)

    def process_IN_MOVED_TO(self, event: Event) -> None:
        source = event.src_pathname
        if source is not None and self._temporary(source) and not self._temporary(event.name):
            signals.in_create.send(sender=self, event=event)
