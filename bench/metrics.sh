#!/usr/bin/env bash
# What a Prometheus scrape every second costs the event path (issue 18): the latency from the
# start of a file's creation to the daemon's line for it, `inotifier run` with the log processor
# (journal on), without metrics, with `[metrics] listen` and no scraper, and with a scraper
# fetching /metrics every second (BENCH_SCRAPE_INTERVAL); the minimal C reader
# (bench/raw_reader.c) is the floor, measured in the same run.
#
#   sudo bash bench/metrics.sh          (root: it mounts a tmpfs)
#
# BENCH_REPEAT (3) runs per watcher, BENCH_LATENCY_N (2000) files per run, INOTIFIER_BIN (the
# release binary, built when missing). Tables on stdout and in bench/build/metrics-results.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NLAT=${BENCH_LATENCY_N:-2000}
SCRAPE_INTERVAL=${BENCH_SCRAPE_INTERVAL:-1}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs"
command -v curl >/dev/null || die "curl is needed for the scraper (apt-get install curl)"
install_cleanup

mkdir -p "$BUILD"
for tool in raw_reader latency; do
    [[ $BUILD/$tool -nt $HERE/$tool.c ]] || gcc -O2 -Wall -o "$BUILD/$tool" "$HERE/$tool.c"
done
if [[ -z ${INOTIFIER_BIN:-} && ! -x $INOTIFIER ]]; then
    log "building the release binary"
    (cd "$REPO" && cargo build --release --locked -p inotifier-cli >&2)
fi

MNT=$(mktemp -d)
mount -t tmpfs -o size=2g tmpfs "$MNT"

WATCHERS=(raw off listening scraped)
declare -A P50 P99 MAX

# config DIR RUN METRICS: the daemon's config for one run.
config() {
    local dir=$1 run=$2 metrics=$3
    {
        echo "[daemon]"
        echo "pid_file = \"$run/inotifier.pid\""
        if [[ $metrics == yes ]]; then
            echo "[metrics]"
            echo 'listen = "127.0.0.1:0"'
        fi
        echo "[[watch]]"
        echo "path = \"$dir\""
        echo 'events = ["IN_CREATE", "IN_CLOSE_WRITE"]'
        echo 'processor = "log"'
    } >"$run/inotifier.toml"
}

metrics_address() {
    "$INOTIFIER" status --json --pid-file "$1/inotifier.pid" 2>/dev/null |
        sed -n 's/^  "metrics": "\(.*\)",$/\1/p'
}

raw_ready() { grep -qs '^inotify wd:' /proc/"$1"/fdinfo/*; }

daemon_ready() { "$INOTIFIER" status --pid-file "$1/inotifier.pid" 2>/dev/null | grep -q '^state: *running'; }

for ((rep = 0; rep < REPEAT; rep++)); do
    for ((i = 0; i < ${#WATCHERS[@]}; i++)); do
        # A different order each repetition, so that no watcher always runs first.
        w=${WATCHERS[(i + rep) % ${#WATCHERS[@]}]}
        run=$MNT/$w-$rep; dir=$run/watched
        mkdir -p "$dir"
        mkfifo "$run/fifo"
        exec 3<>"$run/fifo"
        scraper=""
        if [[ $w == raw ]]; then
            "$BUILD/raw_reader" -m 264 "$dir" >"$run/fifo" 2>"$run/err" &
            wpid=$!; PIDS+=("$wpid")
            # Ready once its inotify descriptor has the watch.
            wait_for 10 raw_ready "$wpid" || die "raw_reader did not start: $(cat "$run/err")"
        else
            config "$dir" "$run" "$([[ $w == off ]] && echo no || echo yes)"
            "$INOTIFIER" run -c "$run/inotifier.toml" >"$run/fifo" 2>"$run/err" &
            wpid=$!; PIDS+=("$wpid")
            wait_for 30 daemon_ready "$run" || die "the daemon did not start: $(cat "$run/err")"
            if [[ $w == scraped ]]; then
                address=$(metrics_address "$run")
                [[ -n $address ]] || die "no metrics address in the status"
                curl -fsS -o /dev/null "http://$address/metrics" || die "the first scrape failed"
                ( while :; do curl -fsS -o /dev/null "http://$address/metrics"; sleep "$SCRAPE_INTERVAL"; done ) &
                scraper=$!; PIDS+=("$scraper")
            fi
        fi
        "$BUILD/latency" -n "$NLAT" "$dir" <&3 >"$run/latency"
        exec 3>&-
        [[ -n $scraper ]] && stop_pid "$scraper"
        stop_pid "$wpid"
        res=$(<"$run/latency")
        log "  $w #$rep: $res"
        P50[$w]+="$(sed -n 's/.*p50=\([0-9]*\).*/\1/p' <<<"$res") "
        P99[$w]+="$(sed -n 's/.*p99=\([0-9]*\).*/\1/p' <<<"$res") "
        MAX[$w]+="$(sed -n 's/.*max=\([0-9]*\).*/\1/p' <<<"$res") "
        rm -rf "$run"   # each run's files and journal: the tmpfs holds one run at a time
    done
done

# shellcheck disable=SC2086
{
    echo "## Metrics: latency, start of create to its line, $NLAT files, µs (median of $REPEAT runs)"
    echo
    echo "| watcher | p50 | p99 | max | p99 vs raw | p99 vs metrics off |"
    echo "|---|---|---|---|---|---|"
    for w in "${WATCHERS[@]}"; do
        p99=$(median ${P99[$w]})
        echo "| $w | $(median ${P50[$w]}) | $p99 | $(median ${MAX[$w]}) | $(ratio "$p99" "$(median ${P99[raw]})") | $(ratio "$p99" "$(median ${P99[off]})") |"
    done
    echo
    echo "raw: bench/raw_reader.c; off: \`inotifier run\`, log processor, journal on, no [metrics];"
    echo "listening: [metrics] listen set, nothing scrapes; scraped: curl fetches /metrics every ${SCRAPE_INTERVAL}s."
} | tee "$BUILD/metrics-results.md"
