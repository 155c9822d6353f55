"""The least Django project that runs the inotifier daemon for bench/django.sh.

The run's directories come from the environment: BENCH_WATCH_DIR (watched for IN_CREATE),
BENCH_PROJECT_PATH (pid file and daemon logs), BENCH_COUNT_FILE (one byte appended per event,
see counting.py) and BENCH_PROCESSOR: "noop" (a counting ProcessEvent), "signal"
(AllEventsSignaler, with counting.py's receiver connected to in_create) or "jsonl" (the native
processor, one line per event in BENCH_COUNT_FILE). For bench/logging_bridge.py:
BENCH_LOG_LEVEL (INOTIFIER_LOG_LEVEL, default warn) and BENCH_LOGGING=LEVEL (a LOGGING that
sends the inotifier loggers at LEVEL to BENCH_PROJECT_PATH/python.log: the daemon's log lines
become Python log records).
"""

import os

SECRET_KEY = "inotifier-bench"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["inotifier", "benchproject.apps.BenchConfig"]
DATABASES = {}

PROCESSORS = {
    "noop": "benchproject.counting.CountingProcessor",
    "signal": "inotifier.event_processors.AllEventsSignaler",
}
PROJECT_PATH = os.environ.get("BENCH_PROJECT_PATH", "/nonexistent")
INOTIFIER_DAEMON_STDERR = "daemon.err"
INOTIFIER_LOG_LEVEL = os.environ.get("BENCH_LOG_LEVEL", "warn")
if os.environ.get("BENCH_LOGGING"):
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": os.path.join(PROJECT_PATH, "python.log"),
            }
        },
        "loggers": {"inotifier": {"handlers": ["file"], "level": os.environ["BENCH_LOGGING"]}},
    }
# BENCH_WORKERS: threads running the processor (the daemon's default: two per CPU).
if os.environ.get("BENCH_WORKERS"):
    INOTIFIER_WORKERS = int(os.environ["BENCH_WORKERS"])
if os.environ.get("BENCH_PROCESSOR") == "jsonl":
    INOTIFIER_WATCH_PATHS = [
        (
            os.environ.get("BENCH_WATCH_DIR", "/nonexistent"),
            "IN_CREATE",
            "jsonl",
            {"options": {"path": os.environ.get("BENCH_COUNT_FILE", "/nonexistent")}},
        )
    ]
else:
    INOTIFIER_WATCH_PATHS = [
        (
            os.environ.get("BENCH_WATCH_DIR", "/nonexistent"),
            "IN_CREATE",
            PROCESSORS[os.environ.get("BENCH_PROCESSOR", "noop")],
        )
    ]
