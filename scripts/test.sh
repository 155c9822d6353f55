#!/usr/bin/env bash
# Runs every test of the project: the formatting and lint checks, the Rust workspace (unit and
# integration tests on real inotify), then the Django app's tests (pytest) against the package
# built from this tree. Installs nothing system-wide: it needs the Rust toolchain (cargo) and
# python3 (3.10 or later, with venv), and must run as root, because some tests lower
# /proc/sys/fs/inotify limits (and restore them) or run the watcher as another user. The Python
# tools go into .venv, created when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
    echo "run the tests as root (sudo $0): some tests change /proc/sys/fs/inotify limits" >&2
    exit 1
fi

# First, so that a missing python3 is reported before the long Rust tests: the Django app's
# virtualenv with the package built from this tree, and the optional one with Django 6.x.
source scripts/venv.sh
source scripts/venv-django6.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
junit=$(mktemp --suffix=.xml)
skipped=$(mktemp)
trap 'rm -f "$log" "$junit" "$skipped"' EXIT
# Tests that need a broker which is not running return early and name it in $skipped (see
# crates/inotifier-test-support/src/services.rs); INOTIFIER_REQUIRE_SERVICES makes them fail.
INOTIFIER_SKIPPED_FILE="$skipped" cargo test --workspace --locked 2>&1 | tee "$log"
# One total for the whole run, whichever test binary happened to finish last.
awk -v skipped="$(sort -u "$skipped" | wc -l)" '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "rust: %d passed, %d failed, %d skipped\n", passed - skipped, failed, ignored + skipped }' "$log"
sort -u "$skipped"

# The Django app's tests, and the example project's code. The broker tests (marked
# `brokers`) skip, naming the service, when one is not running and INOTIFIER_REQUIRE_SERVICES
# is unset.
.venv/bin/ruff format --check python tests example
.venv/bin/ruff check python tests example
# Prints "$2: N passed, N failed, N skipped$3" from the JUnit XML file $1.
summarize() {
    .venv/bin/python - "$1" "$2" "${3:-}" <<'PY'
import sys
import xml.etree.ElementTree as ElementTree

root = ElementTree.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
passed = total - failed - skipped
print(f"{sys.argv[2]}: {passed} passed, {failed} failed, {skipped} skipped{sys.argv[3]}")
PY
}

status=0
.venv/bin/python -m pytest -rs --junitxml="$junit" || status=$?
summary=$(summarize "$junit" python)

# The same tests against Django 6.x, when a Python that can run it was found. Both summaries
# come last, together, so that neither scrolls away behind the other run's output.
if [ -n "$django6_python" ]; then
    # The broker tests exercise the daemon, not Django: the first run has them.
    "$django6_python" -m pytest -m "not brokers" --ignore-glob="tests/test_broker_*.py" --junitxml="$junit" || status=$?
    versions=$("$django6_python" -c 'import django, platform
print(f" (Django {django.get_version()}, Python {platform.python_version()})")')
    summary+=$'\n'$(summarize "$junit" "python (Django 6.x)" "$versions")
else
    summary+=$'\n'"python (Django 6.x): skipped: $django6_skip_reason"
fi
echo "$summary"
exit "$status"
