"""A minimal Django project for the tests. A test that starts the daemon in a subprocess gives it
its watches and directories through the environment (see tests/conftest.py)."""

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "inotifier-tests"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = ["inotifier", "recorder"]
DATABASES = {}

if "INOTIFIER_TEST_PROJECT_PATH" in os.environ:
    PROJECT_PATH = os.environ["INOTIFIER_TEST_PROJECT_PATH"]
    INOTIFIER_DAEMON_STDOUT = "daemon.out"
    INOTIFIER_DAEMON_STDERR = "daemon.err"

if "INOTIFIER_TEST_WATCHES" in os.environ:
    INOTIFIER_WATCH_PATHS = [
        tuple(entry) for entry in json.loads(os.environ["INOTIFIER_TEST_WATCHES"])
    ]
else:
    INOTIFIER_WATCH_PATHS = [
        (str(BASE_DIR), "IN_CREATE", "inotifier.event_processors.AllEventsSignaler"),
    ]

if "INOTIFIER_TEST_JOURNAL" in os.environ:
    INOTIFIER_JOURNAL = json.loads(os.environ["INOTIFIER_TEST_JOURNAL"])

if "INOTIFIER_TEST_WORKERS" in os.environ:
    INOTIFIER_WORKERS = int(os.environ["INOTIFIER_TEST_WORKERS"])

INOTIFIER_LOG_LEVEL = "debug"
INOTIFIER_DRAIN_TIMEOUT = 5

if "INOTIFIER_TEST_CELERY_BROKER_URL" in os.environ:
    CELERY_BROKER_URL = os.environ["INOTIFIER_TEST_CELERY_BROKER_URL"]

if "INOTIFIER_TEST_TASKS" in os.environ:
    TASKS = json.loads(os.environ["INOTIFIER_TEST_TASKS"])

if "INOTIFIER_TEST_LOGGING" in os.environ:
    LOGGING = json.loads(os.environ["INOTIFIER_TEST_LOGGING"])

if "INOTIFIER_TEST_METRICS" in os.environ:
    INOTIFIER_METRICS = json.loads(os.environ["INOTIFIER_TEST_METRICS"])
