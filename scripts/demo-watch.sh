#!/usr/bin/env bash
# The engine alone (`scripts/demo.sh watch` runs it): `inotifier watch` on a demo folder, printing
# every event as JSON.
# Builds the binary, creates ./demo-folder, starts watching it recursively, makes a little
# activity in it so you see events at once, and keeps watching until Ctrl-C.
# Try it yourself from another terminal: mkdir -p demo-folder/x/y && touch demo-folder/x/y/z
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
cargo build --release --locked -p inotifier-cli
folder="$PWD/demo-folder"
mkdir -p "$folder"
echo "watching $folder (Ctrl-C to stop)" >&2

"${CARGO_TARGET_DIR:-target}/release/inotifier" watch --recursive --events 'IN_CREATE|IN_CLOSE_WRITE|IN_MOVED_TO|IN_DELETE|IN_READY' "$folder" &
watcher=$!
trap 'kill -TERM "$watcher" 2>/dev/null; wait "$watcher"' EXIT INT TERM

# Some activity once the watch is in place: a new nested tree (found by the scan of the new
# directory), a file written and renamed into place (IN_READY at once), a deletion.
for _ in $(seq 100); do
    [ -n "$(find /proc/"$watcher"/fdinfo -type f -exec grep -l 'inotify wd' {} + 2>/dev/null)" ] && break
    sleep 0.05
done
stamp=$(date +%s)
mkdir -p "$folder/run-$stamp/a/b"
echo hello > "$folder/run-$stamp/a/b/hello.txt"
echo data > "$folder/run-$stamp/report.csv.part"
mv "$folder/run-$stamp/report.csv.part" "$folder/run-$stamp/report.csv"
rm "$folder/run-$stamp/a/b/hello.txt"
wait "$watcher"
