#!/usr/bin/env bash
# Runs every test of the project: the formatting and lint checks, the Rust workspace (unit and
# integration tests on real inotify), then the Django app's tests (pytest) against the package
# built from this tree. It needs the Rust toolchain (cargo) and python3 (3.10 or later, with
# venv); the Python tools go into .venv, created when missing, and, as root, the servers the
# broker tests start (redis-server, nats-server, openssl) are installed with apt when missing.
#
# Some tests need root: they lower /proc/sys/fs/inotify limits (and restore them), mount small
# tmpfs filesystems, run the watcher as another user, or control the machine's RabbitMQ. Run by
# another user, the script runs itself again through sudo when there is one (saying so first);
# without sudo, or with INOTIFIER_TEST_WITHOUT_SUDO=1, it runs every other test, and those that
# need root are skipped, each naming why, and listed at the end. The exit status is non-zero
# only for failures.
set -euo pipefail
cd "$(dirname "$0")/.."

# Before anything else, so that what runs as root is the whole script, from its first step.
why_root="they lower /proc/sys/fs/inotify limits, mount small tmpfs filesystems, run the \
watcher as another user, or control the machine's RabbitMQ"
if [ "$(id -u)" -ne 0 ]; then
    if [ -z "${INOTIFIER_TEST_WITHOUT_SUDO:-}" ] && command -v sudo >/dev/null; then
        echo "scripts/test.sh: some tests need root ($why_root): running again as root through" \
            "sudo (INOTIFIER_TEST_WITHOUT_SUDO=1 runs the others without it instead)" >&2
        # sudo resets the environment: what the tests read is passed on through env, with PATH
        # (root's own may have no cargo: rustup installs it per user) and where the user's
        # rustup and pyenv keep their versions. -H: what root caches (cargo's registry, pip's
        # downloads) goes to root's home, not as root-owned files into the user's.
        if [ -z "${RUSTUP_HOME:-}" ] && [ -d "${HOME:-}/.rustup" ]; then
            export RUSTUP_HOME="$HOME/.rustup"
        fi
        if [ -z "${PYENV_ROOT:-}" ] && [ -d "${HOME:-}/.pyenv" ]; then
            export PYENV_ROOT="$HOME/.pyenv"
        fi
        kept=("PATH=$PATH")
        for name in INOTIFIER_REQUIRE_SERVICES INOTIFIER_DJANGO6_PYTHON INOTIFIER_BIN \
            INOTIFIER_TEST_PYTHON CARGO_TARGET_DIR CARGO_BUILD_JOBS CARGO_HOME RUSTUP_HOME \
            RUSTUP_TOOLCHAIN PYENV_ROOT PYENV_VERSION; do
            if [ -n "${!name+set}" ]; then
                kept+=("$name=${!name}")
            fi
        done
        exec sudo -H env "${kept[@]}" "$PWD/scripts/test.sh" "$@"
    fi
    if [ -n "${INOTIFIER_TEST_WITHOUT_SUDO:-}" ]; then
        without="INOTIFIER_TEST_WITHOUT_SUDO is set"
    else
        without="there is no sudo"
    fi
    echo "scripts/test.sh: not root, and $without: the tests that need root ($why_root) are" \
        "skipped, each naming why, and listed at the end; run it as root for every test" >&2
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

# The broker tests start Redis, Redis Sentinel, NATS and RabbitMQ servers of their own (TLS
# ones with a CA made by openssl), the admin page's browser test runs chromium, and the doctor's
# test mounts a FUSE filesystem with bindfs: their programs, from Debian's packages, installed
# when missing and root.
missing=()
for program in redis-server:redis-server redis-cli:redis-tools nats-server:nats-server openssl:openssl \
    bindfs:bindfs \
    /usr/lib/rabbitmq/bin/rabbitmq-server:rabbitmq-server /usr/bin/chromium:chromium; do
    command -v "${program%%:*}" >/dev/null || missing+=("${program#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "scripts/test.sh: installing ${missing[*]} (the broker tests run servers of their" \
            "own, the admin page's test a browser, the doctor's test a FUSE mount)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    else
        echo "scripts/test.sh: ${missing[*]} missing: the broker tests that start servers of" \
            "their own will fail, the admin page's browser test is skipped without chromium;" \
            "install the Debian packages ${missing[*]}" >&2
    fi
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
python_root_skips=$(mktemp)
trap 'rm -f "$log" "$junit" "$skipped" "$python_root_skips"' EXIT
# Tests that need a broker which is not running return early and name it in $skipped (see
# crates/inotifier-test-support/src/services.rs); INOTIFIER_REQUIRE_SERVICES makes them fail.
# So do the tests that need root, run by another user (privileges.rs there).
INOTIFIER_SKIPPED_FILE="$skipped" cargo test --workspace --locked 2>&1 | tee "$log"
# The engine's behaviour suite again with every watch also polling (every 20 ms): polls must
# add nothing to what inotify reports (crates/inotifier-core/tests/support/mod.rs).
INOTIFIER_TEST_BACKEND=poll INOTIFIER_SKIPPED_FILE="$skipped" \
    cargo test -p inotifier-core --locked --test engine --test overflow --test ready --test swaps 2>&1 | tee -a "$log"
# One total for the whole run, whichever test binary happened to finish last.
awk -v skipped="$(sort -u "$skipped" | wc -l)" '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "rust: %d passed, %d failed, %d skipped\n", passed - skipped, failed, ignored + skipped }' "$log"
sort -u "$skipped"

# The Django app's tests, and the example project's code. The broker tests (marked
# `brokers`) skip, naming the service, when one is not running and INOTIFIER_REQUIRE_SERVICES
# is unset.
.venv/bin/ruff format --check python tests example
.venv/bin/ruff check python tests example
# Prints "$2: N passed, N failed, N skipped$3" from the JUnit XML file $1, and appends the
# tests skipped for needing root (tests/conftest.py's needs_root marker) to $python_root_skips.
summarize() {
    .venv/bin/python - "$1" "$2" "${3:-}" "$python_root_skips" <<'PY'
import sys
import xml.etree.ElementTree as ElementTree

root = ElementTree.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
passed = total - failed - skipped
print(f"{sys.argv[2]}: {passed} passed, {failed} failed, {skipped} skipped{sys.argv[3]}")
with open(sys.argv[4], "a") as root_skips:
    for case in root.iter("testcase"):
        skip = case.find("skipped")
        if skip is not None and skip.get("message", "").startswith("needs root"):
            name = f"{case.get('classname')}.{case.get('name')}"
            print(f"{name}: skipped: {skip.get('message')}", file=root_skips)
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
# Last, so that a run without root ends by saying what it could not test.
if [ "$(id -u)" -ne 0 ]; then
    echo "not run, needing root (run ./scripts/test.sh as root, or as a user with sudo):"
    { grep -h ': skipped: needs root (' "$skipped" || true; cat "$python_root_skips"; } | sort -u | sed 's/^/  /'
fi
exit "$status"
