#!/usr/bin/env bash
# Benchmark crashes: `inotifier run` killed with SIGKILL three times during a BENCH_FILES-file
# burst (20,000 by default), started again at once each time, the exec processor recording
# every delivery; reports what was lost, what was delivered twice, and how long after the last
# start everything owed was delivered (bench/kill9.py). Needs no root:
# bash bench/kill9.sh. See bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
source "$HERE/lib.sh"

(cd "$REPO" && cargo build --release --locked -q -p inotifier-cli)
INOTIFIER_BIN=${INOTIFIER_BIN:-$REPO/target/release/inotifier} exec python3 "$HERE/kill9.py"
