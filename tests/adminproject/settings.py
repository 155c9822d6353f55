"""The test project with Django's admin: the watches, directories and journal of
``testproject.settings`` (given through the same environment variables, see tests/conftest.py),
plus the admin, its apps and a SQLite database. The database is ``INOTIFIER_TEST_ADMIN_DB``,
else a file in the system's temporary directory; pytest-django's test database is in memory
either way."""

import os
import tempfile
from pathlib import Path

from testproject.settings import *  # noqa: F403

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "inotifier",
    "recorder",
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
ROOT_URLCONF = "adminproject.urls"
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
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get(
            "INOTIFIER_TEST_ADMIN_DB", Path(tempfile.gettempdir()) / "inotifier-adminproject.db"
        ),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
STATIC_URL = "static/"
TIME_ZONE = "UTC"
