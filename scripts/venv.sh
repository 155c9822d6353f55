# Sourced (not run) by scripts/test.sh and scripts/demo.sh, from the repository's root: makes
# .venv (created when missing) hold the Python tools and the package built from this tree.
# Editable install: the Python sources are used in place, the native module is built into
# python/inotifier. django-tasks is the backport of Django 6's django.tasks (for the django_task
# processor's tests on 5.2), django-tasks-db its database backend, psycopg the PostgreSQL driver
# of tests/test_production.py, mypy and django-stubs the type checks of tests/test_typing.py,
# prometheus-client the parser tests/test_metrics.py reads /metrics with.
# Needs python3 (3.10 or later, with venv) and cargo. Django stays at 5.2 (the
# oldest release the app supports) even where python3 could run 6.x: scripts/venv-django6.sh
# makes the Django 6 environment. Playwright drives Debian's chromium in the admin page's browser
# test (its own browser download is never used).
command -v python3 >/dev/null || { echo "python3 not found: install Python 3.10 or later" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet "maturin>=1.7,<2" "Django>=5.2,<6" "pytest>=8" "pytest-django>=4.9" "ruff>=0.6" \
    "celery[redis]>=5.4,<6" "redis>=5" "nats-py>=2.9" "playwright>=1.45,<2" "prometheus-client>=0.20" \
    "django-tasks>=0.12" "django-tasks-db>=0.13" "psycopg[binary]>=3.2" "mypy>=1.13" "django-stubs>=5.2"
VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --quiet --locked
