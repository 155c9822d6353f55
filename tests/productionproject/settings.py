"""A project deployed as a team would run it (tests/test_production.py): PostgreSQL with
persistent, health-checked connections, the tasks of the ``django_task`` processor in the
database backend (django-tasks-db) run by its worker, an ORM-writing processor, ``LOGGING`` to a
file, and the admin. The test gives it its database, directories and application name (which
tells the daemon's connections apart in ``pg_stat_activity``) through the environment."""

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent
STATE = Path(os.environ["INOTIFIER_TEST_PROJECT_PATH"])
INBOX = Path(os.environ["INOTIFIER_TEST_INBOX"])

SECRET_KEY = "inotifier-production-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Django 6 has django.tasks; 5.2 the backport, an app of its own.
    *([] if django.VERSION >= (6, 0) else ["django_tasks"]),
    "django_tasks_db",
    "inotifier",
    "ingest",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "productionproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
STATIC_URL = "static/"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["INOTIFIER_TEST_PG_DATABASE"],
        "HOST": os.environ.get("INOTIFIER_TEST_PG_HOST", "127.0.0.1"),
        "PORT": os.environ.get("INOTIFIER_TEST_PG_PORT", "5432"),
        "USER": os.environ.get("INOTIFIER_TEST_PG_USER", "postgres"),
        # As production runs: connections kept, and checked before reuse after a unit of work.
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"application_name": os.environ.get("INOTIFIER_TEST_PG_APPLICATION", "web")},
    }
}

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "files"]}}

PROJECT_PATH = STATE
INOTIFIER_DAEMON_STDERR = "daemon.err"
INOTIFIER_LOG_LEVEL = "debug"
INOTIFIER_DRAIN_TIMEOUT = 5
INOTIFIER_WATCH_PATHS = [
    (
        INBOX,
        "IN_CLOSE_WRITE",
        "ingest.processors.RecordUpload",
        {"retry": {"attempts": 5, "initial": 0.2}},
    ),
    (
        INBOX,
        "IN_CLOSE_WRITE",
        "django_task",
        {
            "options": {
                "task": "ingest.tasks.ingest",
                "args": ["pathname"],
                "kwargs": {"event_id": "id"},
                "queue_name": "files",
            },
            "retry": {"attempts": 5, "initial": 0.2},
        },
    ),
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": str(STATE / "inotifier.log"),
            "formatter": "plain",
        }
    },
    "loggers": {"inotifier": {"handlers": ["file"], "level": "INFO"}},
}
