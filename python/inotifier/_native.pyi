"""Types of ``inotifier._native``, the Rust side of the package (crates/inotifier-py)."""

from collections.abc import Callable, Sequence
from os import PathLike
from typing import Final, Literal, TypedDict, final

from typing_extensions import Self, disjoint_base

__all__ = [
    "IN_ACCESS",
    "IN_MODIFY",
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_CLOSE_NOWRITE",
    "IN_OPEN",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_MOVE_SELF",
    "IN_UNMOUNT",
    "IN_Q_OVERFLOW",
    "IN_IGNORED",
    "IN_READY",
    "IN_ONLYDIR",
    "IN_DONT_FOLLOW",
    "IN_EXCL_UNLINK",
    "IN_MASK_CREATE",
    "IN_MASK_ADD",
    "IN_ISDIR",
    "IN_ONESHOT",
    "IN_CLOSE",
    "IN_MOVE",
    "ALL_EVENTS",
    "DaemonError",
    "parse_mask",
    "mask_name",
    "valid_mask_names",
    "glob_error",
    "native_processors",
    "native_processor_error",
    "logger_name",
    "log_extra_key",
    "run_daemon",
    "stop",
    "status",
    "status_json",
    "socket_address_error",
    "doctor",
    "journal_summary",
    "journal_list",
    "journal_retry",
    "journal_purge",
    "journal_replay",
    "journal_check",
    "journal_recover",
    "journal_reset",
    "journal_import",
    "Watcher",
    "Event",
]

ALL_EVENTS: Final[int]
IN_ACCESS: Final[int]
IN_ATTRIB: Final[int]
IN_CLOSE: Final[int]
IN_CLOSE_NOWRITE: Final[int]
IN_CLOSE_WRITE: Final[int]
IN_CREATE: Final[int]
IN_DELETE: Final[int]
IN_DELETE_SELF: Final[int]
IN_DONT_FOLLOW: Final[int]
IN_EXCL_UNLINK: Final[int]
IN_IGNORED: Final[int]
IN_ISDIR: Final[int]
IN_MASK_ADD: Final[int]
IN_MASK_CREATE: Final[int]
IN_MODIFY: Final[int]
IN_MOVE: Final[int]
IN_MOVE_SELF: Final[int]
IN_MOVED_FROM: Final[int]
IN_MOVED_TO: Final[int]
IN_ONESHOT: Final[int]
IN_ONLYDIR: Final[int]
IN_OPEN: Final[int]
IN_Q_OVERFLOW: Final[int]
IN_READY: Final[int]
IN_UNMOUNT: Final[int]

AnyPath = str | bytes | PathLike[str] | PathLike[bytes]
Mask = int | str | Sequence[int | str]

class DaemonError(RuntimeError):
    """The daemon could not start or stopped on an error."""

@disjoint_base
class Event:
    """One file event (pyinotify's attributes, and inotifier's ``id``, ``origin``, ``time``)."""

    id: int
    mask: int
    cookie: int
    wd: int
    path: str
    name: str
    src_pathname: str | None
    origin: Literal["kernel", "scan", "rescan", "catchup"] | str
    time: float
    def __new__(
        cls,
        *,
        mask: int,
        path: str | bytes,
        name: str | bytes | None = None,
        wd: int = ...,  # -1
        cookie: int = 0,
        src_pathname: str | bytes | None = None,
        id: int = 0,
        origin: str | None = None,
        time: float = 0.0,
    ) -> Self: ...
    @property
    def maskname(self) -> str: ...
    @property
    def pathname(self) -> str: ...
    @property
    def dir(self) -> bool: ...
    @property
    def synthetic(self) -> bool: ...

@final
class Watcher:
    def __new__(
        cls,
        paths: Sequence[bytes],
        mask: Mask,
        recursive: bool = False,
        exclude: Sequence[str] = ...,
        include: Sequence[str] = ...,
        settle: float | None = None,
        temp_patterns: Sequence[str] | None = None,
    ) -> Self: ...
    def next_batch(self, timeout_ms: int) -> list[Event] | None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def watch_count(self) -> int: ...

def parse_mask(text: str) -> int: ...
def mask_name(mask: int) -> str: ...
def valid_mask_names() -> list[str]: ...
def native_processors() -> list[str]: ...
def native_processor_error(
    kind: str,
    options_json: str,
    base_dir: AnyPath,
    environment: dict[str, str] | None = None,
) -> tuple[Literal["invalid", "unavailable"], str] | None: ...
def glob_error(pattern: str) -> str | None: ...
def socket_address_error(text: str) -> str | None: ...
def status_json(pid_file: AnyPath) -> str: ...
def logger_name(target: str, processor: str | None = None) -> str: ...
def log_extra_key(name: str) -> str: ...
def run_daemon(
    config_json: str,
    build: Callable[[str, str], Callable[[Event], object]],
    readiness_fd: int | None = None,
    systemd_notify: bool = False,
) -> None: ...
def stop(
    pid_file: AnyPath, timeout: float
) -> tuple[Literal["stopped", "still_running", "not_running"], int | None]: ...

class Status(TypedDict, total=False):
    running: bool
    pid: int
    stale_pid: int | None
    uptime: float | None
    state: str
    watches: int
    kernel_watches: int
    events_seen: int
    delivered: int
    failed: int
    retried: int
    batches: int
    behind: int
    problems: list[str]

def status(pid_file: AnyPath) -> Status: ...

class Finding(TypedDict):
    level: Literal["ok", "warning", "problem"]
    check: str
    what: str
    hint: str | None

def doctor(
    config_json: str, connect_timeout: float = 5.0, walk_limit: float = 30.0
) -> list[Finding]: ...

class JournalSummary(TypedDict):
    key: str
    pending: int
    dead: int
    oldest_pending: int | None
    last_acked: int | None

class JournalEntry(TypedDict):
    id: int
    processor: str
    state: Literal["pending", "dead"]
    mask: int
    maskname: str
    pathname: str
    attempts: int
    error: str | None
    json: str
    time_ns: int

def journal_summary(path: AnyPath) -> list[JournalSummary]: ...
def journal_list(
    path: AnyPath,
    processor: str | None = None,
    dead: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> list[JournalEntry]: ...
def journal_retry(
    path: AnyPath,
    processor: str | None = None,
    first: int | None = None,
    last: int | None = None,
    ids: Sequence[int] | None = None,
) -> int: ...
def journal_purge(
    path: AnyPath,
    dead: bool,
    processor: str | None = None,
    first: int | None = None,
    last: int | None = None,
    ids: Sequence[int] | None = None,
) -> int: ...
def journal_replay(path: AnyPath, processor: str, first: int, last: int) -> int: ...
def journal_check(path: AnyPath) -> None: ...
def journal_recover(path: AnyPath) -> str: ...
def journal_reset(path: AnyPath) -> str: ...
def journal_import(path: AnyPath, jsonl: AnyPath, processor: str) -> tuple[int, int] | None: ...
