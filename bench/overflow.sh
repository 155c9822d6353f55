#!/usr/bin/env bash
# Duplicates and losses when the kernel queue overflows (issue 20, point 11): gen creates
# BENCH_EVENTS files (default 20000) while fs.inotify.max_queued_events is BENCH_QUEUE (default
# 1024), so that the queue overflows under a reader that keeps up only part of the time:
#
#   live     the watcher reads while gen writes;
#   queued   the watcher is stopped (SIGSTOP) for the whole burst, then continued.
#
# Watchers: `inotifier run` (jsonl processor, journal on; its rescan reports what the kernel
# dropped) and the minimal C reader (bench/raw_reader.c), which has no rescan: what overflowed
# is lost. For each run: deliveries of the burst's files, distinct files, lost (never
# delivered), duplicates (delivered more than once), and inotifier's overflow count.
#
#   sudo bash bench/overflow.sh        (root: a tmpfs, and the queue size)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NEVENTS=${BENCH_EVENTS:-20000}
QUEUE=${BENCH_QUEUE:-1024}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and sets max_queued_events"
install_cleanup

mkdir -p "$BUILD"
for tool in gen raw_reader; do
    [[ $BUILD/$tool -nt $HERE/$tool.c ]] || gcc -O2 -Wall -o "$BUILD/$tool" "$HERE/$tool.c"
done
if [[ -z ${INOTIFIER_BIN:-} && ! -x $INOTIFIER ]]; then
    (cd "$REPO" && cargo build --release --locked -p inotifier-cli >&2)
fi

MNT=$(mktemp -d)
mount -t tmpfs -o size=2g tmpfs "$MNT"

raw_ready() { grep -qs '^inotify wd:' /proc/"$1"/fdinfo/*; }
daemon_ready() { "$INOTIFIER" status --pid-file "$1/inotifier.pid" 2>/dev/null | grep -q '^state: *running'; }
# Whether the daemon's status counts every delivery in its output, with nothing pending.
status_caught_up() {
    local document lines
    document=$("$INOTIFIER" status --json --pid-file "$1/inotifier.pid") || return 1
    lines=$(names "$1/out" | wc -l)
    grep -q "^    \"delivered\": $lines,\$" <<<"$document" && grep -q '"pending": 0,' <<<"$document"
}

# The burst's file name (gen writes f<number>) of each line of FILE: one per delivery (a JSON
# line names it twice, in name and pathname).
names() { sed -n 's/.*\(f[0-9]\{7\}\).*/\1/p' "$1"; }

rows=()
for mode in live queued; do
    for ((rep = 0; rep < REPEAT; rep++)); do
        for w in inotifier raw; do
            run=$MNT/$mode-$w-$rep; dir=$run/watched
            mkdir -p "$dir"
            # The queue size is taken when the watcher's instance is made.
            echo "$QUEUE" >"$MAXQ"
            if [[ $w == raw ]]; then
                "$BUILD/raw_reader" -m 8 "$dir" >"$run/out" 2>"$run/err" &   # IN_CLOSE_WRITE
                wpid=$!; PIDS+=("$wpid")
                wait_for 10 raw_ready "$wpid" || die "raw_reader did not start"
            else
                cat >"$run/inotifier.toml" <<EOF
[daemon]
pid_file = "$run/inotifier.pid"
[[watch]]
path = "$dir"
events = ["IN_CLOSE_WRITE"]
processor = "jsonl"
options = { path = "$run/out" }
EOF
                "$INOTIFIER" run -c "$run/inotifier.toml" >/dev/null 2>"$run/err" &
                wpid=$!; PIDS+=("$wpid")
                wait_for 30 daemon_ready "$run" || die "the daemon did not start: $(cat "$run/err")"
            fi
            echo "$OLD_MAXQ" >"$MAXQ"
            burst "$mode" "$wpid" "$dir" "$NEVENTS" >/dev/null
            # Done when every file is in (or, for a watcher that lost some, when its output has
            # not grown for 3 s).
            last=-1; still=0
            while :; do
                count=$(names "$run/out" | sort -u | wc -l)
                (( count >= NEVENTS )) && break
                if (( count == last )); then still=$((still + 1)); (( still >= 150 )) && break
                else still=0; last=$count; fi
                sleep 0.02
            done
            overflows=-
            if [[ $w == inotifier ]]; then
                # The status file is rewritten every second: wait until it has every delivery
                # the output holds (the rescan's reports included) and nothing pending.
                wait_for 30 status_caught_up "$run" || log "  (the status did not catch up)"
                overflows=$("$INOTIFIER" status --json --pid-file "$run/inotifier.pid" |
                    sed -n 's/^ *"overflows": \([0-9]*\),$/\1/p' | head -1)
            fi
            stop_pid "$wpid"
            deliveries=$(names "$run/out" | wc -l)
            distinct=$(names "$run/out" | sort -u | wc -l)
            row="| $mode | $w | $deliveries | $distinct | $((NEVENTS - distinct)) | $((deliveries - distinct)) | $overflows |"
            log "  $row"
            rows+=("$row")
            rm -rf "$run"
        done
    done
done

{
    echo "## Overflow: $NEVENTS files, max_queued_events $QUEUE, IN_CLOSE_WRITE ($REPEAT runs each)"
    echo
    echo "| burst | watcher | deliveries | distinct files | lost | duplicates | overflows |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} | tee "$BUILD/overflow-results.md"
