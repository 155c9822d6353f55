"""Logging pieces for tests/test_logging.py, named by the LOGGING a test gives through
``INOTIFIER_TEST_LOGGING``: a formatter that shows a record's extra fields, a handler that
raises, and a Python processor whose ``close()`` raises (it logs while holding the GIL)."""

import json
import logging

from inotifier.event_processors import ProcessEvent

# The attributes every LogRecord has: anything else on a record came through ``extra``.
STANDARD = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", (), None))) | {
    "message",
    "asctime",
}


class FieldsFormatter(logging.Formatter):
    """``%(name)s %(levelname)s %(message)s``, then `` | `` and the extra fields as JSON."""

    def __init__(self):
        super().__init__("%(name)s %(levelname)s %(message)s")

    def format(self, record):
        extra = {key: value for key, value in vars(record).items() if key not in STANDARD}
        line = super().format(record).replace("\n", "\\n")
        return f"{line} | {json.dumps(extra, sort_keys=True)}"


class RaisingHandler(logging.Handler):
    """Raises from ``emit`` itself, as a broken handler does (not through ``handleError``)."""

    def emit(self, record):
        raise RuntimeError(f"this handler always fails ({record.name})")


class FailingClose(ProcessEvent):
    """Takes every event; ``close()`` raises, which the daemon logs from the thread holding the
    GIL."""

    def process_default(self, event):
        pass

    def close(self):
        raise RuntimeError("close() fails on purpose")
