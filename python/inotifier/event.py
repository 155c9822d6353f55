"""The event handed to processors: pyinotify's attributes, and inotifier's own."""

import os

from inotifier._native import IN_ISDIR, mask_name


def _as_str(value):
    # Names are bytes in the kernel; os.fsdecode maps undecodable bytes to lone surrogates
    # (surrogateescape), so os.fsencode gives the exact bytes back.
    return os.fsdecode(value) if isinstance(value, bytes) else value


class Event:
    """One file event.

    pyinotify's attributes: ``mask``, ``maskname`` (``"IN_CREATE|IN_ISDIR"``), ``path`` (the
    watched directory), ``name`` (the entry in it, ``""`` for events about ``path`` itself),
    ``pathname``, ``dir``, ``wd``, ``cookie`` and ``src_pathname`` (on an ``IN_MOVED_TO`` paired
    with its ``IN_MOVED_FROM``: where the entry came from, else ``None``). inotifier's:
    ``id`` (increases per event), ``origin`` (``"kernel"``, or ``"scan"``/``"rescan"`` for events
    the engine synthesized), ``synthetic`` and ``time`` (seconds since the epoch).
    Names are ``str``; ``os.fsencode(event.name)`` gives the kernel's bytes.
    """

    __slots__ = ("cookie", "id", "mask", "name", "origin", "path", "src_pathname", "time", "wd")

    def __init__(
        self,
        *,
        mask,
        path,
        name="",
        wd=-1,
        cookie=0,
        src_pathname=None,
        id=0,
        origin="kernel",
        time=0.0,
    ):
        self.id = id
        self.mask = mask
        self.cookie = cookie
        self.wd = wd
        self.path = _as_str(path)
        self.name = _as_str(name)
        self.src_pathname = _as_str(src_pathname)
        self.origin = origin
        self.time = time

    @property
    def maskname(self):
        return mask_name(self.mask)

    @property
    def pathname(self):
        return os.path.join(self.path, self.name) if self.name else self.path

    @property
    def dir(self):
        return bool(self.mask & IN_ISDIR)

    @property
    def synthetic(self):
        return self.origin != "kernel"

    def __repr__(self):
        fields = [
            f"id={self.id}",
            f"mask={self.mask:#x}",
            f"maskname={self.maskname}",
            f"pathname={self.pathname!r}",
            f"wd={self.wd}",
            f"cookie={self.cookie}",
        ]
        if self.src_pathname is not None:
            fields.append(f"src_pathname={self.src_pathname!r}")
        if self.synthetic:
            fields.append(f"origin={self.origin}")
        return f"<Event {' '.join(fields)}>"
