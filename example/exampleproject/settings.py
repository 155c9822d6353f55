"""The example project: the inotifier daemon watches ``inbox/``; every file completely written
there is recorded by the ``received`` app, and the admin lists them.

Two environment variables move what the project writes, so that the tests can run it without
touching this directory: ``INOTIFIER_EXAMPLE_INBOX`` (the watched directory, default ``inbox/``)
and ``INOTIFIER_EXAMPLE_STATE`` (the directory of the database, the daemon's pid file and its
``log/``, default this project's directory).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INBOX_DIR = Path(os.environ.get("INOTIFIER_EXAMPLE_INBOX", BASE_DIR / "inbox"))
STATE_DIR = Path(os.environ.get("INOTIFIER_EXAMPLE_STATE", BASE_DIR))

# A demo on the loopback interface: not for production (fixed key, DEBUG so that runserver
# serves the admin's static files).
SECRET_KEY = "inotifier-example-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "inotifier",
    "received",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "exampleproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": STATE_DIR / "db.sqlite3",
        # The daemon's worker threads write concurrently with each other and with runserver:
        # wait for SQLite's lock rather than fail at once.
        "OPTIONS": {"timeout": 20},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# IN_READY: a file is ready once it has been closed and left alone for the settle time, or
# at once when renamed into place from a temporary name (x.part -> x). ReadySignaler sends
# inotifier.signals.in_ready, which received.apps connects to the recording receiver. Retries
# cover a database locked for longer than the timeout above.
INOTIFIER_WATCH_PATHS = [
    (
        INBOX_DIR,
        "IN_READY",
        "inotifier.event_processors.ReadySignaler",
        {"retry": {"attempts": 5, "initial": 0.2}},
    ),
]
PROJECT_PATH = STATE_DIR
INOTIFIER_DAEMON_STDOUT = "log/inotifier.out"
INOTIFIER_DAEMON_STDERR = "log/inotifier.err"
