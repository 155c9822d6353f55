#!/usr/bin/env bash
# Benchmark delivery to Python: the inotifier daemon run by Django's manage.py against pyinotify,
# each with the same processors. Run as root (it mounts a tmpfs and sets
# fs.inotify.max_queued_events): sudo bash bench/django.sh. See bench/README.md.
#
# Four watchers of one directory, mask IN_CREATE, each appending one byte per event to a count
# file opened once (so the count is the file's size, read with stat):
#   inotifier-noop    manage.py inotifier_start --foreground, a ProcessEvent subclass counting
#                     in process_IN_CREATE (bench/djangoproject/benchproject/counting.py)
#   inotifier-signal  the same with AllEventsSignaler and one in_create receiver counting
#   pyinotify-noop    pyinotify Notifier, a pyinotify.ProcessEvent counting the same way
#   pyinotify-signal  pyinotify, process_IN_CREATE sends a Django Signal; one receiver counts
# (bench/pyinotify_bench.py). Two modes:
#   live    gen creates BENCH_EVENTS files while the watcher reads, with the kernel's default
#           max_queued_events (16384): what is not read in time is lost.
#   queued  the burst waits in the kernel while the watcher is stopped (SIGSTOP, queue raised so
#           nothing overflows), then it is continued: delivery rate free of the generator's pace.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NEVENTS=${BENCH_EVENTS:-100000}
PYI_VENV=$BUILD/pyinotify-venv

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and sets fs.inotify.max_queued_events"

install_cleanup

size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# probe_seen DIR COUNT_FILE: creates DIR/probe anew (a watcher not ready yet missed the last
# one) and says whether any event has been counted.
probe_seen() {
    rm -f "$1/probe"; : >"$1/probe"
    sleep 0.05
    (( $(size_of "$2") > 0 ))
}

# wait_count FILE BASE N: waits until FILE holds BASE+N bytes or has not grown for 3 s (a
# watcher that lost events never gets there); prints the count and when it last grew (µs).
wait_count() {
    local file=$1 base=$2 n=$3 count last=-1 t_last still=0
    t_last=$(now_us)
    while :; do
        count=$(( $(size_of "$file") - base ))
        if (( count != last )); then
            t_last=$(now_us); still=0; last=$count
        else
            still=$((still + 1))
        fi
        (( count >= n || still >= 150 )) && break
        sleep 0.02
    done
    echo "$count $t_last"
}

# ---------------------------------------------------------------- build
mkdir -p "$BUILD"
[[ $BUILD/gen -nt $HERE/gen.c ]] || gcc -O2 -Wall -o "$BUILD/gen" "$HERE/gen.c"
# .venv as the tests have it (scripts/venv.sh, editable, debug build), then the native module
# rebuilt with --release: the engine's speed is what is compared, not the debug build's.
(cd "$REPO" && source scripts/venv.sh \
    && VIRTUAL_ENV="$REPO/.venv" .venv/bin/maturin develop --quiet --locked --release) >&2
VENV_PY=$REPO/.venv/bin/python
# pyinotify on the machine's python3 (3.11 here), with Django for the signal variant.
if ! "$PYI_VENV/bin/python" -c 'import pyinotify, django' 2>/dev/null; then
    python3 -m venv "$PYI_VENV"
    "$PYI_VENV/bin/pip" install --quiet pyinotify "Django>=5.2" >&2
fi
log "inotifier $("$VENV_PY" -c 'import importlib.metadata as m; print(m.version("django-inotifier"))')," \
    "pyinotify $("$PYI_VENV/bin/python" -c 'import pyinotify; print(pyinotify.__version__)')," \
    "$("$VENV_PY" --version)"

MNT=$(mktemp -d /tmp/inotifier-pybench.XXXXXX)
mount -t tmpfs -o size=1g tmpfs "$MNT"
chmod 700 "$MNT"

# ---------------------------------------------------------------- one run
# start WHO RUN: starts the watcher of RUN/w counting into RUN/count; echoes its pid. Nothing it
# starts may keep this function's stdout open: the caller reads it to its end.
start() {
    local who=$1 run=$2
    case $who in
    inotifier-*)
        BENCH_WATCH_DIR=$run/w BENCH_PROJECT_PATH=$run BENCH_COUNT_FILE=$run/count \
            BENCH_PROCESSOR=${who#inotifier-} \
            "$VENV_PY" "$HERE/djangoproject/manage.py" inotifier_start --foreground \
            >"$run/out" 2>"$run/err" & ;;
    pyinotify-*)
        "$PYI_VENV/bin/python" "$HERE/pyinotify_bench.py" "${who#pyinotify-}" "$run/w" "$run/count" \
            >"$run/out" 2>"$run/err" & ;;
    esac
    echo $!
}

# run MODE WHO I: prints "MODE WHO count=C rate=R cpu_ticks=T".
run() {
    local mode=$1 who=$2 i=$3 run pid t0 t1 count base cpu0 cpu1 ok=0
    run=$MNT/$mode-$who-$i
    mkdir -p "$run/w"
    pid=$(start "$who" "$run"); PIDS+=("$pid")
    for _ in $(seq 300); do probe_seen "$run/w" "$run/count" && { ok=1; break; }; done
    (( ok )) || die "$who did not start: $(cat "$run/err")"
    sleep 0.3   # let the last probes' events arrive before taking the base
    base=$(size_of "$run/count")
    cpu0=$(cpu_ticks "$pid")
    t0=$(burst "$mode" "$pid" "$run/w" "$NEVENTS")
    read -r count t1 < <(wait_count "$run/count" "$base" "$NEVENTS")
    cpu1=$(cpu_ticks "$pid")
    stop_pid "$pid"
    # The rate counts what was delivered, until the last event arrived.
    echo "$mode $who count=$count rate=$(per_second "$count" $((t1 - t0))) cpu_ticks=$((cpu1 - cpu0))"
    rm -rf "$run"
}

# ---------------------------------------------------------------- run and report
WHO=(inotifier-noop pyinotify-noop inotifier-signal pyinotify-signal)
declare -A RATES LOST CPU
order=("${WHO[@]}")
for i in $(seq "$REPEAT"); do
    for mode in live queued; do
        # live: the kernel's default queue; queued: room for the whole burst.
        if [[ $mode == live ]]; then echo 16384 >"$MAXQ"; else echo $((NEVENTS + 16384)) >"$MAXQ"; fi
        for who in "${order[@]}"; do
            line=$(run "$mode" "$who" "$i"); log "$line"
            [[ $line =~ count=([0-9-]+)\ rate=([0-9]+)\ cpu_ticks=([0-9]+) ]] || die "bad line: $line"
            lost=$(( NEVENTS - BASH_REMATCH[1] )); (( lost < 0 )) && lost=0
            RATES[$mode-$who]+=" ${BASH_REMATCH[2]}"
            LOST[$mode-$who]+=" $lost"
            CPU[$mode-$who]+=" ${BASH_REMATCH[3]}"
        done
    done
    # alternate the order between rounds, so that no watcher always runs first
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
done

med() { median ${RATES[$1]:-}; }
cpu_ms() { ticks_ms ${CPU[$1]:-}; }
# lost: the median, and the worst run in brackets
lost_of() { local l; l=(${LOST[$1]:-}); echo "$(median "${l[@]}") (worst $(printf '%s\n' "${l[@]}" | sort -g | tail -1))"; }
table() {
    local mode=$1 who base
    echo "| | events/s | vs inotifier | lost | CPU ms | CPU vs inotifier |"
    echo "|---|---|---|---|---|---|"
    for who in "${WHO[@]}"; do
        base=inotifier-${who#*-}
        echo "| $who | $(med "$mode-$who") | $(ratio "$(med "$mode-$who")" "$(med "$mode-$base")") | $(lost_of "$mode-$who") | $(cpu_ms "$mode-$who") | $(ratio "$(cpu_ms "$mode-$who")" "$(cpu_ms "$mode-$base")") |"
    done
}
{
    echo "live: gen creates $NEVENTS files while the watcher reads, max_queued_events 16384;"
    echo "events/s delivered to the processor until the last one arrived (medians of $REPEAT)"
    table live
    echo
    echo "queued: the same $NEVENTS events queued while the watcher was stopped, then drained"
    echo "(medians of $REPEAT)"
    table queued
    echo
    echo "Per run (events/s):"
    for key in "${!RATES[@]}"; do echo "- $key:${RATES[$key]} (lost:${LOST[$key]})"; done | sort
} | tee "$BUILD/last-django-results.md"
