#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (unit and integration tests on real
# inotify), then the formatting and lint checks. Installs nothing system-wide: it needs the Rust
# toolchain (cargo) and must run as root, because some tests lower /proc/sys/fs/inotify limits
# (and restore them) or run the watcher as another user.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
    echo "run the tests as root (sudo $0): some tests change /proc/sys/fs/inotify limits" >&2
    exit 1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One total for the whole run, whichever test binary happened to finish last.
awk '/^test result:/ { passed += $4; failed += $6; ignored += $8 }
     END { printf "rust: %d passed, %d failed, %d skipped\n", passed, failed, ignored }' "$log"
