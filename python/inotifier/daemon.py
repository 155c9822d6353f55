"""Starting the native daemon from a Django process: in the foreground, or daemonized.

The daemon runs in the process of ``manage.py inotifier_start`` (or in its daemonized child),
with Django set up: processors, signals and receivers are the project's own code.
"""

import contextlib
import json
import os
import sys
import threading
import traceback

from django import db

from inotifier import _native
from inotifier import settings as inotifier_settings


class StartError(Exception):
    """The daemon did not come up; the message says why."""


class ProcessorBuilder:
    """Called by the native daemon once per watch: ``(kind, options_json)`` -> the processor
    object. ``kind`` is the name the settings gave; the class is the one they resolved (which
    may not be importable by name, e.g. a class given directly)."""

    def __init__(self, watches):
        # Native processors are built by the daemon itself and never reach this.
        self.classes = {
            watch.processor_name: watch.processor for watch in watches if watch.processor
        }

    def __call__(self, kind, options_json):
        return UnitOfWork(self.classes[kind](**json.loads(options_json)))


class UnitOfWork:
    """A processor called as Django calls a view: ``close_old_connections()`` before and after
    each event, as around a request or a Celery task, so that ``CONN_MAX_AGE`` and
    ``CONN_HEALTH_CHECKS`` mean what they mean there, and a connection the database dropped
    (a restart, a failover, ``idle_session_timeout``, a pooler) is replaced instead of failing
    every later event. Connections are per thread: each worker thread's own are checked, and
    kept from one event to the next as ``CONN_MAX_AGE`` allows (the native side keeps each
    worker's Python thread state for the thread's life). ``close()`` closes the connections of
    the thread that calls it; each worker's own go when its thread ends."""

    __slots__ = ("processor",)

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, event):
        db.close_old_connections()
        try:
            return self.processor(event)
        finally:
            db.close_old_connections()

    def close(self):
        close = getattr(self.processor, "close", None)
        try:
            if callable(close):
                close()
        finally:
            db.connections.close_all()


def run_foreground(watches):
    """Runs the daemon in this process until SIGTERM or SIGINT (systemd ``Type=notify`` gets
    READY=1 once every watch is in place)."""
    _refuse_threads()
    config = inotifier_settings.daemon_config(watches)
    _native.run_daemon(config, ProcessorBuilder(watches), systemd_notify=True)


def start_background(watches):
    """Forks the daemon (double fork, new session, output to the configured files) and waits
    until it has every watch in place. Returns ``(pid, kernel_watches)``; raises
    :class:`StartError` with the daemon's reason when it did not come up."""
    _refuse_threads()
    config = inotifier_settings.daemon_config(watches)
    stdout = inotifier_settings.output_file("INOTIFIER_DAEMON_STDOUT")
    stderr = inotifier_settings.output_file("INOTIFIER_DAEMON_STDERR")
    # The daemon must not share the parent's database connections.
    db.connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    first = os.fork()
    if first > 0:
        os.close(write_end)
        os.waitpid(first, 0)
        with os.fdopen(read_end, "rb") as pipe:
            return _outcome(pipe.read().decode(errors="replace"))

    # The intermediate child, then the daemon: nothing here may return to the caller.
    try:
        os.close(read_end)
        os.setsid()
        # A second fork, so that the daemon is no session leader and never gets a terminal.
        if os.fork() > 0:
            os._exit(0)
        os.umask(0o027)
        os.chdir("/")
        _redirect(stdout, stderr)
        _close_inherited(write_end)
    except BaseException as error:  # noqa: BLE001  the child must never return to the caller
        _report_failure(write_end, error)
        os._exit(1)
    status = 1
    try:
        # From here the native side owns write_end and reports every outcome through it.
        _native.run_daemon(config, ProcessorBuilder(watches), readiness_fd=write_end)
        status = 0
    except BaseException:  # noqa: BLE001  logged; the exit status says it failed
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status)


def _close_inherited(keep):
    """Closes what the caller of ``manage.py`` left open (a pipe ``inotifier_start 5>&1 | cat``
    waits on, a socket): Python opens its own descriptors non-inheritable, so the inheritable
    ones above 2 are the caller's, and the daemon must not hold them for its whole life."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
                if os.get_inheritable(fd):
                    os.close(fd)


def _report_failure(write_end, error):
    try:
        traceback.print_exc()
        message = " ".join(f"{type(error).__name__}: {error}".split())
        os.write(write_end, f"ERROR {message}\n".encode(errors="replace"))
    except OSError:
        pass


def _redirect(stdout, stderr):
    null = os.open(os.devnull, os.O_RDWR)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(stdout, flags, 0o640) if stdout else null
    err = os.open(stderr, flags, 0o640) if stderr else null
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    # Opened on 0-2 when the starter had closed its standard streams: those stay.
    for descriptor in {null, out, err} - {0, 1, 2}:
        os.close(descriptor)


def _outcome(text):
    line = text.splitlines()[0] if text else ""
    if line.startswith("READY "):
        fields = line.split()
        if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
            return int(fields[1]), int(fields[2])
    if line.startswith("ERROR "):
        raise StartError(line[len("ERROR ") :])
    raise StartError(
        "the daemon exited before its watches were in place; see its stderr "
        "(INOTIFIER_DAEMON_STDERR)"
    )


def _refuse_threads():
    # The daemon blocks SIGTERM in the thread that runs it and takes it there; a thread started
    # earlier does not block it, so SIGTERM could kill the process instead of draining it. And a
    # fork keeps only the calling thread, so another one's locks could stay held forever.
    others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if others:
        raise StartError(
            f"this process already runs other threads ({', '.join(others)}): start the daemon "
            "from a fresh `manage.py inotifier_start`, before anything starts a thread"
        )
