# Sourced (not run) by scripts/test.sh after scripts/venv.sh, from the repository's root: makes
# .venv-django6 (created when missing) hold Django 6.x, the test tools and the package, for a
# second pytest run. Django 6 needs Python 3.12 or later, which many machines lack: without one,
# django6_python stays empty and django6_skip_reason says why; the caller reports the skip.
# INOTIFIER_DJANGO6_PYTHON names the interpreter to use instead of searching.
django6_python=""
django6_skip_reason=""

# Whether $1 runs and is Python 3.12 or later. A pyenv shim for a version that is installed but
# not selected exists on PATH and fails when run, hence running every candidate.
python_for_django6() {
    "$1" -c 'import sys, venv; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python_for_django6() {
    local candidate index
    if [ -n "${INOTIFIER_DJANGO6_PYTHON:-}" ]; then
        python_for_django6 "$INOTIFIER_DJANGO6_PYTHON" && echo "$INOTIFIER_DJANGO6_PYTHON"
        return
    fi
    # On PATH, then pyenv's installed versions, newest first (a glob, so that no path is split).
    local pyenv_pythons=("${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3)
    local candidates=(python3.14 python3.13 python3.12)
    for ((index = ${#pyenv_pythons[@]} - 1; index >= 0; index--)); do
        candidates+=("${pyenv_pythons[index]}")
    done
    for candidate in "${candidates[@]}"; do
        if python_for_django6 "$candidate"; then
            echo "$candidate"
            return
        fi
    done
}

found=$(find_python_for_django6) || true
if [ -z "$found" ]; then
    django6_skip_reason="no python3.12 found (Django 6 needs Python 3.12 or later; set INOTIFIER_DJANGO6_PYTHON to use one)"
else
    # A venv made by another interpreter (one since removed, or older) is made again.
    if ! python_for_django6 .venv-django6/bin/python; then
        rm -rf .venv-django6
        "$found" -m venv .venv-django6
    fi
    .venv-django6/bin/python -m pip install --quiet "Django>=6,<7" "pytest>=8" "pytest-django>=4.9" \
        "django-tasks-db>=0.13" "psycopg[binary]>=3.2" "playwright>=1.45,<2" "prometheus-client>=0.20"
    # The extension is abi3: the wheel of the build scripts/venv.sh just made (same profile,
    # same interpreter, so cargo has nothing to do) serves Python 3.12 as well. Installed, not
    # editable: this run tests the package as pip installs it.
    django6_wheels=$(mktemp -d)
    VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin build --quiet --locked --profile dev \
        --interpreter .venv/bin/python --out "$django6_wheels"
    .venv-django6/bin/python -m pip install --quiet --no-deps --force-reinstall "$django6_wheels"/*.whl
    rm -rf "$django6_wheels"
    django6_python=.venv-django6/bin/python
fi
