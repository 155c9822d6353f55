#!/usr/bin/env bash
# The main job: the example Django project (example/). Makes .venv hold the package built from
# this tree, migrates the example's SQLite database, creates the superuser "admin" if there is
# none (its password printed; INOTIFIER_EXAMPLE_ADMIN_PASSWORD chooses it), then runs the
# inotifier daemon watching example/inbox and Django's development server on 127.0.0.1:8000
# (INOTIFIER_EXAMPLE_ADDRESS changes it) until Ctrl-C, and drops two files in the inbox so that
# records appear at once in the admin. Every file completely written in example/inbox becomes
# a row there.
#
# `scripts/demo.sh watch` runs the engine's demo instead (scripts/demo-watch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    watch) exec bash scripts/demo-watch.sh ;;
    "") ;;
    *) echo "usage: $0 [watch]" >&2; exit 2 ;;
esac

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
source scripts/venv.sh

# The settings read the same variables, with the same defaults.
inbox="${INOTIFIER_EXAMPLE_INBOX:-$PWD/example/inbox}"
state="${INOTIFIER_EXAMPLE_STATE:-$PWD/example}"
address="${INOTIFIER_EXAMPLE_ADDRESS:-127.0.0.1:8000}"
# log/: where the settings send the output of a daemon started in the background.
mkdir -p "$inbox" "$state/log"
manage() { .venv/bin/python example/manage.py "$@"; }

manage migrate --noinput
manage ensure_admin

daemon=""
server=""
stop_both() {
    for pid in $daemon $server; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $daemon $server; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_both EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Started directly, not through the manage function: a function in the background runs in a
# subshell, whose pid is not the program's. --noreload: one server process, not two.
.venv/bin/python example/manage.py inotifier_start --foreground &
daemon=$!
.venv/bin/python example/manage.py runserver --noreload "$address" &
server=$!

# The demo files go in once the watch is in place, or they would not be reported.
deadline=$((SECONDS + 30))
until manage inotifier_status >/dev/null; do
    kill -0 "$daemon" 2>/dev/null || { echo "the inotifier daemon did not start (above: why)" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "the inotifier daemon is not up after 30s" >&2; exit 1; }
    sleep 0.1
done

# One file written in chunks (ready once closed and left alone for 200 ms), one written under
# a temporary name and renamed into place (ready at once; the .part is never recorded).
stamp=$(date +%H%M%S)
for line in "id,name" "1,alpha" "2,beta"; do
    echo "$line"
    sleep 0.05
done >"$inbox/chunked-$stamp.csv"
head -c 100000 /dev/urandom >"$inbox/upload-$stamp.bin.part"
mv "$inbox/upload-$stamp.bin.part" "$inbox/upload-$stamp.bin"

cat >&2 <<TEXT

The example is running. The received files are listed at http://$address/admin/
(log in as admin); drop files in $inbox to see them appear.
Ctrl-C stops the daemon and the server.

TEXT
# Until Ctrl-C, or until either of them ends (port taken, daemon error): then both stop.
wait -n "$daemon" "$server"
