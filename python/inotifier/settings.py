"""The app's settings, read with their defaults and normalised for the daemon.

``INOTIFIER_WATCH_PATHS`` (required): an iterable of ``(path, mask, processor)`` or
``(path, mask, processor, options)``:

- ``path``: an absolute path (str or ``os.PathLike``) to an existing directory or file;
- ``mask``: an int (``IN_CREATE | IN_DELETE``), a string of names joined by ``|`` or ``,``
  (``"IN_CREATE|IN_DELETE"``, ``"create,delete"``), or a list of names;
- ``processor``: a dotted path (``"myapp.event_processors.Upload"``) or the class itself; or
  the name of a native processor (``"log"``, ``"jsonl"``, ``"exec"``, ``"webhook"``, ``"celery"``,
  ``"redis_stream"``, ``"jetstream"``), which the
  daemon runs in Rust without calling Python per event, configured by ``options``; or
  ``"django_task"`` (:mod:`inotifier.tasks`: each event enqueued as a Django task);
- ``options``: a dict with any of ``recursive`` (bool, default False), ``auto_add`` (bool,
  default = recursive), ``exclude`` and ``include`` (lists of globs), ``settle`` (seconds a file
  must stay untouched before ``IN_READY``, default 0.2), ``temp_patterns`` (globs of temporary
  names), ``backend`` (``"auto"``, the default: inotify, polling on filesystems where inotify
  misses other hosts' changes, such as NFS and FUSE; ``"inotify"``; ``"poll"``),
  ``poll_interval`` (seconds between the listings of a polled tree, default 1), ``retry``
  (dict: ``attempts``, ``initial``, ``max`` in seconds, ``multiplier``) and
  ``options`` (a JSON-serialisable dict given to the processor: ``Processor(**options)``) and
  ``name`` (the watch's key in the journal, see ``INOTIFIER_JOURNAL``).

``INOTIFIER_DAEMON_STDOUT`` / ``INOTIFIER_DAEMON_STDERR`` (optional): files the daemon appends its
output to (relative paths are taken from the project directory); /dev/null when unset.
``INOTIFIER_LOG_LEVEL`` (default ``"info"``), ``INOTIFIER_DRAIN_TIMEOUT`` (seconds a stopping
daemon keeps delivering what it read, default 10) and ``INOTIFIER_WORKERS`` (threads running
processors, default 1: one event at a time, as pyinotify did).

``INOTIFIER_JOURNAL`` (optional): the durable journal, a dict with any of ``enabled`` (bool,
default True), ``path`` (relative to the project directory; default: the pid file with the
extension ``.journal``, ``PROJECT_PATH/inotifier.journal``), ``retain`` (acknowledged events
kept for replay, default 100000), ``catch_up`` (report what changed while the daemon was down,
default True) and ``first_start`` (``"silent"`` or ``"report"``: what the first start of a
watch reports, default ``"silent"``). A watch's options may give it a ``name``: its key in the
journal (default ``processor@path``), required to tell apart two watches of one path and
processor.

``PROJECT_PATH`` (optional): the project directory; the pid file is ``PROJECT_PATH/inotifier.pid``.
Without it the pid file goes to a directory private to this user (``$XDG_RUNTIME_DIR/inotifier``,
else ``/tmp/inotifier-<uid>``, mode 0700 and checked to be ours), named after the project.

Every problem is reported by the system checks (see :mod:`inotifier.checks`) with how to fix
it: a problem of the settings themselves is an error (``inotifier.E001`` ...), a fact of the
machine they are checked on (a watched path missing there) a warning (``inotifier.W001`` ...),
so that ``migrate`` or ``collectstatic`` on a host without the watched paths passes while
``inotifier_start`` refuses to start. Reading the settings changes nothing: the broker URL of
``settings.CELERY_BROKER_URL`` is handed to the daemon explicitly (:func:`daemon_config`), never
exported to ``os.environ``.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import stat
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from inotifier._native import (
    ALL_EVENTS,
    IN_Q_OVERFLOW,
    IN_READY,
    glob_error,
    native_processor_error,
    native_processors,
    parse_mask,
    socket_address_error,
)

# Processor names without a dot are never dotted paths: these name the daemon's own processors,
# and the app's own processors written in Python.
NATIVE_PROCESSORS = tuple(native_processors())
SHIPPED_PROCESSORS = {"django_task": "inotifier.tasks.TaskProcessor"}

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
WATCH_OPTIONS = (
    "recursive",
    "auto_add",
    "exclude",
    "include",
    "settle",
    "temp_patterns",
    "backend",
    "poll_interval",
    "retry",
    "options",
    "name",
)
BACKENDS = ("auto", "inotify", "poll")
#: Shorter would list a tree again and again without a pause worth the name.
MIN_POLL_INTERVAL = 0.01
RETRY_OPTIONS = ("attempts", "initial", "max", "multiplier")
JOURNAL_KEYS = ("enabled", "path", "retain", "catch_up", "first_start")
FIRST_START = ("silent", "report")


@dataclasses.dataclass(frozen=True)
class Problem(Exception):
    """A setting that cannot work: the check id, what is wrong, how to fix it."""

    id: str
    msg: str
    hint: str

    @property
    def warning(self):
        """A fact of this machine (``inotifier.W...``), not a mistake in the settings."""
        return self.id.startswith("inotifier.W")

    def __str__(self):
        return f"{self.id}: {self.msg} HINT: {self.hint}"


@dataclasses.dataclass(frozen=True)
class Watch:
    """One normalised entry of ``INOTIFIER_WATCH_PATHS``."""

    path: str
    mask: int
    processor: object  # the class; None for a native processor
    processor_name: str
    recursive: bool = False
    auto_add: bool = False
    exclude: tuple = ()
    include: tuple = ()
    settle: float | None = None
    temp_patterns: tuple | None = None
    backend: str = "auto"
    poll_interval: float | None = None
    retry: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    name: str | None = None
    #: Variables the daemon's native processor reads instead of its environment's.
    environment: dict = dataclasses.field(default_factory=dict)

    @property
    def key(self):
        """What the journal knows this watch by, as the daemon computes it."""
        return self.name if self.name is not None else f"{self.processor_name}@{self.path}"

    def document(self):
        """This watch as the native daemon reads it."""
        # pyinotify handed every processor IN_Q_OVERFLOW whatever its mask
        # (process_IN_Q_OVERFLOW); Python processors keep that, native ones (and the app's
        # django_task) get it when asked.
        overflow = getattr(self.processor, "receives_overflow", self.processor is not None)
        mask = self.mask | IN_Q_OVERFLOW if overflow else self.mask
        return {
            "name": self.name,
            "path": self.path,
            "mask": mask,
            "processor": self.processor_name,
            "recursive": self.recursive,
            "auto_add": self.auto_add,
            "exclude": list(self.exclude),
            "include": list(self.include),
            "settle": self.settle,
            "temp_patterns": None if self.temp_patterns is None else list(self.temp_patterns),
            "backend": self.backend,
            "poll_interval": self.poll_interval,
            "retry": self.retry,
            "options": self.options,
        }


def project_dir():
    """``PROJECT_PATH``, else ``BASE_DIR``, else the current directory."""
    for name in ("PROJECT_PATH", "BASE_DIR"):
        value = getattr(settings, name, None)
        if value:
            return Path(value)
    return Path.cwd()


def mask_value(mask):
    """The int of a mask given as an int, a ``|``-joined string or a list of names."""
    if isinstance(mask, bool):
        raise ValueError(f"{mask!r} is not an event mask")
    if isinstance(mask, int):
        if not 0 <= mask < 2**32:
            raise ValueError(f"{mask} does not fit in 32 bits")
        value = mask
    elif isinstance(mask, str):
        value = parse_mask(mask)
    elif isinstance(mask, (list, tuple, set, frozenset)) and all(isinstance(m, str) for m in mask):
        value = parse_mask("|".join(mask))
    else:
        raise ValueError(
            f"{mask!r} is not an int, a string of event names or a list of event names"
        )
    if not value & (ALL_EVENTS | IN_READY):
        raise ValueError(f"{mask!r} names no event (only flags such as IN_ISDIR or IN_ONESHOT)")
    return value


def _seconds(value, what):
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise Problem(
            "inotifier.E008",
            f"{what} is {value!r}, not a number of seconds >= 0.",
            f"Give {what} as seconds (0.5) or a datetime.timedelta.",
        )
    return float(value)


def _globs(value, what, where):
    if isinstance(value, str) or not all(isinstance(g, str) for g in value or ()):
        raise Problem(
            "inotifier.E008",
            f"{where}: {what} must be a list of glob strings, not {value!r}.",
            f'Write {what} as a list, e.g. ["*.tmp", "build/**"].',
        )
    for pattern in value:
        error = glob_error(pattern)
        if error is not None:
            raise Problem(
                "inotifier.E008",
                f"{where}: {what} pattern {pattern!r}: {error}.",
                "Globs use *, **, ?, [a-z], [!a-z]; escape a literal character with \\.",
            )
    return tuple(value)


def celery_environment(processor_options):
    """The ``celery`` processor reads its broker URL from the daemon's environment (a URL
    with a password is a secret, never written in its options). A Django project configured
    for Celery has it in ``settings.CELERY_BROKER_URL``: that is given to the processor as
    that variable (``{name: url}``), unless the options or the environment already say where
    to send. Nothing is exported: the check and the daemon pass it explicitly."""
    if "broker_url" in processor_options:
        return {}
    variable = processor_options.get("broker_url_env", "CELERY_BROKER_URL")
    url = getattr(settings, "CELERY_BROKER_URL", None)
    if isinstance(variable, str) and url and not os.environ.get(variable):
        return {variable: str(url)}
    return {}


def processor_name(processor):
    if isinstance(processor, str):
        return processor
    return f"{processor.__module__}.{processor.__qualname__}"


def normalise(entry, index, warnings):
    """The :class:`Watch` of one entry; raises :class:`Problem` for a mistake in it, and
    appends to ``warnings`` what this machine lacks for it."""
    where = f"INOTIFIER_WATCH_PATHS[{index}]"
    if not isinstance(entry, (list, tuple)) or len(entry) not in (3, 4):
        raise Problem(
            "inotifier.E002",
            f"{where} is {entry!r}, not a (path, mask, processor) or "
            "(path, mask, processor, options) tuple.",
            "Write each entry as ('/abs/path', 'IN_CLOSE_WRITE', 'myapp.event_processors.P').",
        )
    path, mask, processor = entry[:3]
    options = entry[3] if len(entry) == 4 else {}

    if not isinstance(path, (str, os.PathLike)) or not os.path.isabs(os.fspath(path)):
        raise Problem(
            "inotifier.E003",
            f"{where}: the path {path!r} is not an absolute path.",
            "Give the watched path as an absolute str or pathlib.Path, e.g. BASE_DIR / 'uploads'.",
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        warnings.append(
            Problem(
                "inotifier.W001",
                f"{where}: the path {path} does not exist on this machine.",
                "Create it (or mount it) before starting the daemon, or correct the setting; "
                "inotifier_start refuses to start without it.",
            )
        )
    elif not os.access(path, os.R_OK):
        warnings.append(
            Problem(
                "inotifier.W002",
                f"{where}: the path {path} cannot be read by this user.",
                "Give the daemon's user read access (and execute on directories).",
            )
        )

    try:
        mask = mask_value(mask)
    except ValueError as error:
        raise Problem(
            "inotifier.E005",
            f"{where}: invalid event mask: {error}",
            "Use inotifier constants (IN_CREATE | IN_DELETE), a string such as "
            "'IN_CREATE|IN_DELETE', or a list of names.",
        ) from None

    name = processor_name(processor) if callable(processor) or isinstance(processor, str) else None
    native = isinstance(processor, str) and processor in NATIVE_PROCESSORS
    if native:
        processor = None
    elif isinstance(processor, str) and processor in SHIPPED_PROCESSORS:
        processor = import_string(SHIPPED_PROCESSORS[processor])
    elif isinstance(processor, str):
        try:
            processor = import_string(processor)
        except ImportError as error:
            raise Problem(
                "inotifier.E006",
                f"{where}: the processor {name!r} cannot be imported: {error}",
                "Give the dotted path of a class, e.g. "
                "'inotifier.event_processors.AllEventsSignaler', or the class itself.",
            ) from None
    if not native and not callable(processor):
        raise Problem(
            "inotifier.E006",
            f"{where}: the processor {processor!r} is not a class.",
            "Give a ProcessEvent subclass (or any class whose instances are called with the "
            "event), as a class or a dotted path.",
        )

    if not isinstance(options, dict):
        raise Problem(
            "inotifier.E007",
            f"{where}: the options (4th item) are {options!r}, not a dict.",
            f"Give a dict with any of {', '.join(WATCH_OPTIONS)}.",
        )
    unknown = sorted(set(options) - set(WATCH_OPTIONS))
    if unknown:
        raise Problem(
            "inotifier.E007",
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}.",
            f"Valid options: {', '.join(WATCH_OPTIONS)}; processor options go in 'options'.",
        )
    for flag in ("recursive", "auto_add"):
        if flag in options and not isinstance(options[flag], bool):
            raise Problem(
                "inotifier.E008",
                f"{where}: {flag} is {options[flag]!r}, not True or False.",
                f"Set {flag} to True or False.",
            )
    recursive = options.get("recursive", False)
    backend = options.get("backend", "auto")
    if backend not in BACKENDS:
        raise Problem(
            "inotifier.E008",
            f"{where}: backend is {backend!r}, not one of {', '.join(map(repr, BACKENDS))}.",
            'Leave it out ("auto": inotify, polling where the filesystem hides other hosts\' '
            'changes), or give "inotify" or "poll".',
        )
    poll_interval = None
    if "poll_interval" in options:
        poll_interval = _seconds(options["poll_interval"], f"{where}: poll_interval")
        if poll_interval < MIN_POLL_INTERVAL:
            raise Problem(
                "inotifier.E008",
                f"{where}: poll_interval is {poll_interval!r}, below {MIN_POLL_INTERVAL}.",
                "Give at least 0.01 seconds; the default is 1.",
            )
    watch_name = options.get("name")
    if "name" in options and (not isinstance(watch_name, str) or not watch_name.strip()):
        raise Problem(
            "inotifier.E008",
            f"{where}: name is {watch_name!r}, not a non-empty string.",
            "Give the watch a name that tells it from the others, e.g. 'uploads-thumbnails', "
            "or leave it out.",
        )
    retry = options.get("retry", {})
    if not isinstance(retry, dict) or set(retry) - set(RETRY_OPTIONS):
        raise Problem(
            "inotifier.E008",
            f"{where}: retry is {retry!r}.",
            f"Give retry as a dict with any of {', '.join(RETRY_OPTIONS)}.",
        )
    retry = dict(retry)
    attempts = retry.get("attempts", 1)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise Problem(
            "inotifier.E008",
            f"{where}: retry attempts is {attempts!r}, not an integer >= 1.",
            "attempts counts every try, the first included: 1 means no retry.",
        )
    for key in ("initial", "max"):
        if key in retry:
            retry[key] = _seconds(retry[key], f"{where}: retry {key}")
    multiplier = retry.get("multiplier", 1.0)
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier < 1:
        raise Problem(
            "inotifier.E008",
            f"{where}: retry multiplier is {multiplier!r}, not a number >= 1.",
            "The delay between tries grows by this factor; 2.0 doubles it.",
        )
    if retry.get("max", 30.0) < retry.get("initial", 0.1):
        raise Problem(
            "inotifier.E008",
            f"{where}: retry max is below retry initial.",
            "Make max at least initial.",
        )

    processor_options = options.get("options", {})
    if not isinstance(processor_options, dict):
        raise Problem(
            "inotifier.E009",
            f"{where}: the processor options are {processor_options!r}, not a dict.",
            "Give 'options' as a dict; it is passed as keyword arguments to the processor.",
        )
    try:
        json.dumps(processor_options)
    except (TypeError, ValueError) as error:
        raise Problem(
            "inotifier.E009",
            f"{where}: the processor options cannot be handed to the daemon: {error}.",
            "Use only str, int, float, bool, None, lists and dicts in processor options.",
        ) from None
    environment = celery_environment(processor_options) if native and name == "celery" else {}
    if native:
        # The daemon's own check (files are neither created nor opened), with relative paths
        # taken from where the daemon will take them.
        error = native_processor_error(
            name, json.dumps(processor_options), str(project_dir().resolve()), environment
        )
        if error and error[0] == "unavailable":
            # A secret in the environment or a certificate mounted where the daemon runs: a
            # host that builds the image has neither.
            warnings.append(
                Problem(
                    "inotifier.W007",
                    f"{where}: the {name} processor needs what this machine lacks: {error[1]}",
                    "Provide it where the daemon runs (its environment, the file); "
                    "inotifier_start refuses to start without it.",
                )
            )
        elif error:
            raise Problem(
                "inotifier.E014",
                f"{where}: the {name} processor's options are invalid: {error[1]}",
                f"See the options of the {name} processor in the README (Config reference).",
            )
    elif name in SHIPPED_PROCESSORS:
        from inotifier import tasks

        try:
            tasks.resolve(processor_options)
        except tasks.OptionsError as error:
            raise Problem(error.id, f"{where}: {error.msg}", error.hint) from None

    return Watch(
        path=path,
        mask=mask,
        processor=processor,
        processor_name=name,
        recursive=recursive,
        auto_add=options.get("auto_add", recursive),
        exclude=_globs(options.get("exclude", ()), "exclude", where),
        include=_globs(options.get("include", ()), "include", where),
        settle=_seconds(options["settle"], f"{where}: settle") if "settle" in options else None,
        temp_patterns=(
            _globs(options["temp_patterns"], "temp_patterns", where)
            if "temp_patterns" in options
            else None
        ),
        backend=backend,
        poll_interval=poll_interval,
        retry=retry,
        options=processor_options,
        name=watch_name,
        environment=environment,
    )


def inspect():
    """``(watches, problems)``: every entry that is valid, and every problem of the settings
    (errors) and of this machine (warnings). Changes nothing."""
    watches, problems = [], []
    entries = getattr(settings, "INOTIFIER_WATCH_PATHS", None)
    if (
        entries is None
        or isinstance(entries, (str, bytes, dict))
        or not hasattr(entries, "__iter__")
    ):
        problems.append(
            Problem(
                "inotifier.E001",
                "INOTIFIER_WATCH_PATHS is missing or not a list of watches."
                if entries is None
                else f"INOTIFIER_WATCH_PATHS is {entries!r}, not a list of watches.",
                "Set INOTIFIER_WATCH_PATHS = [('/abs/path', 'IN_CLOSE_WRITE', "
                "'inotifier.event_processors.AllEventsSignaler')].",
            )
        )
        entries = []
    else:
        entries = list(entries)
        if not entries:
            problems.append(
                Problem(
                    "inotifier.E001",
                    "INOTIFIER_WATCH_PATHS is empty: the daemon would watch nothing.",
                    "Add at least one (path, mask, processor) entry to INOTIFIER_WATCH_PATHS.",
                )
            )
    first_of_key = {}
    for index, entry in enumerate(entries):
        warnings = []
        try:
            watch = normalise(entry, index, warnings)
        except Problem as problem:
            problems.append(problem)
            continue
        finally:
            problems.extend(warnings)
        watches.append(watch)
        # Each watch has its own cursor in the journal, found by its key: two watches with one
        # key would each miss what the other acknowledged.
        if watch.key in first_of_key:
            problems.append(
                Problem(
                    "inotifier.E017",
                    f"INOTIFIER_WATCH_PATHS[{index}] has the same processor and path as "
                    f"INOTIFIER_WATCH_PATHS[{first_of_key[watch.key]}] (journal key "
                    f"{watch.key!r}).",
                    "Give each of them a distinct 'name' in its options, e.g. "
                    f"{{'name': 'watch-{index}'}}.",
                )
            )
        else:
            first_of_key[watch.key] = index
    problems.extend(_daemon_problems())
    return watches, problems


def _daemon_problems():
    problems = []
    project_path = getattr(settings, "PROJECT_PATH", None)
    if project_path is not None and not isinstance(project_path, (str, os.PathLike)):
        problems.append(
            Problem(
                "inotifier.E011",
                f"PROJECT_PATH is {project_path!r}, not a path.",
                "Set PROJECT_PATH to the project's directory (the pid file goes there), or "
                "remove it to use a private runtime directory.",
            )
        )
    elif project_path is not None and not os.path.isdir(project_path):
        problems.append(
            Problem(
                "inotifier.W004",
                f"PROJECT_PATH {project_path} is not an existing directory on this machine.",
                "Create it before starting the daemon (its pid file goes there), or correct "
                "the setting.",
            )
        )
    for name in ("INOTIFIER_DAEMON_STDOUT", "INOTIFIER_DAEMON_STDERR"):
        value = getattr(settings, name, None)
        if value is None:
            continue
        if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
            problems.append(
                Problem(
                    "inotifier.E010",
                    f"{name} is {value!r}, not a file path.",
                    f"Set {name} to a file path (relative to the project directory) or None.",
                )
            )
            continue
        directory = (project_dir() / os.fspath(value)).parent
        if not directory.is_dir():
            problems.append(
                Problem(
                    "inotifier.W003",
                    f"{name}: the directory {directory} does not exist on this machine.",
                    "Create it before starting the daemon, or point the setting at a file in "
                    "an existing directory.",
                )
            )
    level = getattr(settings, "INOTIFIER_LOG_LEVEL", "info")
    if level not in LOG_LEVELS:
        problems.append(
            Problem(
                "inotifier.E012",
                f"INOTIFIER_LOG_LEVEL is {level!r}.",
                f"Use one of {', '.join(LOG_LEVELS)}.",
            )
        )
    try:
        _seconds(getattr(settings, "INOTIFIER_DRAIN_TIMEOUT", 10), "INOTIFIER_DRAIN_TIMEOUT")
    except Problem as problem:
        problems.append(dataclasses.replace(problem, id="inotifier.E013"))
    try:
        workers()
    except Problem as problem:
        problems.append(problem)
    try:
        metrics()
    except Problem as problem:
        problems.append(problem)
    try:
        # Where the journal goes depends on PROJECT_PATH, which E011 said is no path.
        path = None if problems and problems[0].id == "inotifier.E011" else journal()["path"]
    except Problem as problem:
        problems.append(problem)
    except ImproperlyConfigured as error:
        problems.append(_pid_directory_problem(error))
    else:
        # The default, next to the pid file, is in a directory the daemon makes (or that W004
        # names): only a path of the settings' own can be missing.
        given = (getattr(settings, "INOTIFIER_JOURNAL", None) or {}).get("path") is not None
        if given and path is not None and not os.path.isdir(os.path.dirname(path)):
            problems.append(
                Problem(
                    "inotifier.W005",
                    f"INOTIFIER_JOURNAL: the directory of the journal {path} does not exist "
                    "on this machine.",
                    "Create it before starting the daemon, or set INOTIFIER_JOURNAL['path'].",
                )
            )
    return problems


def _pid_directory_problem(error):
    return Problem(
        "inotifier.W006",
        str(error),
        "inotifier_start refuses to start until the pid file's directory is private to this "
        "user, or PROJECT_PATH is set.",
    )


def _journal_problem(msg):
    return Problem(
        "inotifier.E016",
        msg,
        "Set INOTIFIER_JOURNAL to a dict with any of enabled (bool), path (a file; relative to "
        "the project directory), retain (an int >= 0), catch_up (bool) and first_start "
        "('silent' or 'report'), or leave it out for the defaults.",
    )


def journal():
    """``INOTIFIER_JOURNAL`` normalised: ``path`` (absolute, or None when disabled),
    ``retain``, ``catch_up``, ``first_start``. Raises :class:`Problem` (E016)."""
    value = getattr(settings, "INOTIFIER_JOURNAL", None)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise _journal_problem(f"INOTIFIER_JOURNAL is {value!r}, not a dict.")
    unknown = sorted(set(value) - set(JOURNAL_KEYS), key=str)
    if unknown:
        raise _journal_problem(
            f"INOTIFIER_JOURNAL has unknown key(s) {', '.join(map(repr, unknown))}: valid keys "
            f"are {', '.join(JOURNAL_KEYS)}."
        )
    for flag in ("enabled", "catch_up"):
        if flag in value and not isinstance(value[flag], bool):
            raise _journal_problem(
                f"INOTIFIER_JOURNAL[{flag!r}] is {value[flag]!r}, not True or False."
            )
    retain = value.get("retain", 100_000)
    if isinstance(retain, bool) or not isinstance(retain, int) or retain < 0:
        raise _journal_problem(f"INOTIFIER_JOURNAL['retain'] is {retain!r}, not an int >= 0.")
    first_start = value.get("first_start", "silent")
    if first_start not in FIRST_START:
        raise _journal_problem(
            f"INOTIFIER_JOURNAL['first_start'] is {first_start!r}, not 'silent' nor 'report'."
        )
    path = value.get("path")
    if path is None:
        path = pid_file().with_suffix(".journal")
    else:
        if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
            raise _journal_problem(f"INOTIFIER_JOURNAL['path'] is {path!r}, not a file path.")
        path = project_dir() / os.fspath(path)
    return {
        "path": str(path) if value.get("enabled", True) else None,
        "retain": retain,
        "catch_up": value.get("catch_up", True),
        "first_start": first_start,
    }


def metrics():
    """``INOTIFIER_METRICS``: ``{"listen": "127.0.0.1:9464"}`` serves the daemon's Prometheus
    metrics there; None (the default) serves none. Raises :class:`Problem` (E021)."""
    value = getattr(settings, "INOTIFIER_METRICS", None)
    if value is None:
        return None
    hint = (
        'Set INOTIFIER_METRICS = {"listen": "127.0.0.1:9464"} (an address and port; port 0 lets '
        "the kernel choose), or leave it out for no metrics endpoint."
    )
    if not isinstance(value, dict) or set(value) - {"listen"}:
        raise Problem("inotifier.E021", f"INOTIFIER_METRICS is {value!r}.", hint)
    listen = value.get("listen")
    if listen is None:
        return None
    error = socket_address_error(listen) if isinstance(listen, str) else f"{listen!r} is no string"
    if error:
        raise Problem("inotifier.E021", f"INOTIFIER_METRICS['listen']: {error}.", hint)
    return {"listen": listen}


def workers():
    """``INOTIFIER_WORKERS``: how many threads run processors. One by default, as pyinotify ran
    them: processors written for it need not be thread-safe, and Python code runs one thread at
    a time anyway (more threads only help processors that wait on I/O, and cost GIL handoffs)."""
    value = getattr(settings, "INOTIFIER_WORKERS", None)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
        raise Problem(
            "inotifier.E015",
            f"INOTIFIER_WORKERS is {value!r}.",
            "Use a whole number from 1 to 1024 (1 when unset).",
        )
    return value


def watches():
    """The normalised watches; ImproperlyConfigured names every problem."""
    found, problems = inspect()
    if problems:
        raise ImproperlyConfigured("\n".join(map(str, problems)))
    return found


def output_file(name):
    value = getattr(settings, name, None)
    return None if value is None else str(project_dir() / os.fspath(value))


def _private_runtime_dir(create):
    """``$XDG_RUNTIME_DIR/inotifier``, else ``/tmp/inotifier-<uid>``: a 0700 directory of ours.
    A directory of that name that another user owns, or that others can write to, is refused:
    whoever controls it could plant a pid file naming any process."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        directory = Path(runtime) / "inotifier"
    else:
        directory = Path("/tmp") / f"inotifier-{os.getuid()}"
    if create:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return directory
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ImproperlyConfigured(
            f"{directory} is not a private directory of this user (a symlink, another owner, "
            "or open to others): set PROJECT_PATH so that the pid file goes to the project."
        )
    return directory


def pid_file(create_dir=False):
    """``PROJECT_PATH/inotifier.pid``, else a file in a private runtime directory named after
    the project, so that two projects of one user do not share a daemon."""
    project_path = getattr(settings, "PROJECT_PATH", None)
    if project_path:
        return Path(project_path) / "inotifier.pid"
    identity = f"{settings.SETTINGS_MODULE}:{project_dir().resolve()}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return _private_runtime_dir(create_dir) / f"inotifier-{digest}.pid"


def daemon_config(found_watches, create_dir=True):
    """The JSON document ``inotifier._native.run_daemon`` reads. ``create_dir=False`` (for
    ``inotifier_doctor``, which changes nothing) leaves a missing private runtime directory
    uncreated."""
    return json.dumps(
        {
            "pid_file": str(pid_file(create_dir=create_dir)),
            "stdout": output_file("INOTIFIER_DAEMON_STDOUT"),
            "stderr": output_file("INOTIFIER_DAEMON_STDERR"),
            "log_level": getattr(settings, "INOTIFIER_LOG_LEVEL", "info"),
            "drain_timeout": _seconds(
                getattr(settings, "INOTIFIER_DRAIN_TIMEOUT", 10), "INOTIFIER_DRAIN_TIMEOUT"
            ),
            "workers": workers(),
            "queue_capacity": None,
            "base_dir": str(project_dir().resolve()),
            "environment": {
                name: value for watch in found_watches for name, value in watch.environment.items()
            },
            "journal": journal(),
            "metrics": metrics(),
            "watches": [watch.document() for watch in found_watches],
        }
    )
