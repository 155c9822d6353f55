#!/usr/bin/env bash
# Benchmark the daemon's delivery against what people use today.
# Run as root (it mounts a tmpfs and runs incrond): sudo bash bench/daemon.sh. See bench/README.md.
#
#   J  events/s from the kernel to a processor that appends one line per event to a file:
#      `inotifier run` with the jsonl processor, `inotifywait -m --format` (line-buffered into a
#      file) and the minimal C reader (bench/raw_reader.c) into a file.
#   Q  the same, but the burst is queued in the kernel while the watcher is stopped (SIGSTOP,
#      with fs.inotify.max_queued_events raised so nothing overflows), then the watcher is
#      continued: how fast each drains 100,000 queued events into its file, free of the
#      generator's pace.
#   X  programs run per second, one per file written: `inotifier run` with the exec processor,
#      incron (incrond, the tool for "run a command on a file event"), and the shell loop
#      `inotifywait -m | while read f; do touch ...; done`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NEVENTS=${BENCH_EVENTS:-100000}
NEXEC=${BENCH_EXEC:-2000}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and starts incrond"

INCRON_TABLE=/etc/incron.d/inotifier-bench
cleanup_extra() { rm -f "$INCRON_TABLE"; }
install_cleanup

# Lines of the output file, not counting the probes of the readiness check.
lines_of() { [[ -f $1 ]] || { echo 0; return; }; grep -vc probe "$1" || true; }
files_in() { find "$1" -mindepth 1 -maxdepth 1 | wc -l; }
at_least_lines() { (( $(lines_of "$1") >= $2 )); }
at_least_files() { (( $(files_in "$1") >= $2 )); }

# wait_count KIND PATH N: waits until PATH has N lines/files, or its count has not moved for
# 3 s (a watcher that lost events never gets there); prints the last count.
wait_count() {
    local kind=$1 path=$2 n=$3 count last=-1 still=0
    while :; do
        if [[ $kind == lines ]]; then count=$(lines_of "$path"); else count=$(files_in "$path"); fi
        (( count >= n )) && break
        if (( count == last )); then
            still=$((still + 1)); (( still >= 150 )) && break
        else
            still=0; last=$count
        fi
        sleep 0.02
    done
    echo "$count"
}

# ---------------------------------------------------------------- build
mkdir -p "$BUILD"
for tool in gen raw_reader; do
    [[ $BUILD/$tool -nt $HERE/$tool.c ]] || gcc -O2 -Wall -o "$BUILD/$tool" "$HERE/$tool.c"
done
command -v inotifywait >/dev/null || apt-get install -y -q inotify-tools >/dev/null
command -v incrond >/dev/null || apt-get install -y -q incron >/dev/null
if [[ -z ${INOTIFIER_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --locked -q -p inotifier-cli)
fi

MNT=$(mktemp -d /tmp/inotifier-bench.XXXXXX)
mount -t tmpfs -o size=2g tmpfs "$MNT"
chmod 700 "$MNT"

# ---------------------------------------------------------------- J: events to a file
# start_J WHO RUN: starts the watcher of $RUN/w writing $RUN/out; echoes its pid. Nothing it
# starts may keep this function's stdout open: the caller reads it to its end.
start_J() {
    local who=$1 run=$2
    case $who in
    inotifier)
        cat >"$run/inotifier.toml" <<EOF
[daemon]
pid_file = "inotifier.pid"
log_level = "warn"
[[watch]]
path = "w"
events = "IN_CREATE"
processor = "jsonl"
[watch.options]
path = "out"
EOF
        "$INOTIFIER" run -c "$run/inotifier.toml" >/dev/null 2>"$run/err" & ;;
    inotifywait|raw)
        start_peer "$who" "$run/w" "$run/out" "$run/err"; return ;;
    esac
    echo $!
}

# run_J MODE WHO I: MODE live (the watcher reads while the generator writes) or queued (the
# burst waits in the kernel queue while the watcher is stopped, then it is continued).
run_J() {
    local mode=$1 who=$2 i=$3 run pid t0 t1 count tag
    tag=$([[ $mode == live ]] && echo J || echo Q)
    run=$MNT/J-$who-$i
    mkdir -p "$run/w"
    pid=$(start_J "$who" "$run"); PIDS+=("$pid")
    # Ready when a probe file shows up in the output (created anew each time: a watcher that
    # was not ready yet missed the creation).
    wait_for 30 bash -c "rm -f '$run/w/probe'; touch '$run/w/probe'; grep -q probe '$run/out' 2>/dev/null" \
        || die "$who did not start: $(cat "$run/err")"
    local cpu0; cpu0=$(cpu_ticks "$pid")
    t0=$(burst "$mode" "$pid" "$run/w" "$NEVENTS")
    count=$(wait_count lines "$run/out" "$NEVENTS")
    t1=$(now_us)
    local cpu1; cpu1=$(cpu_ticks "$pid")
    stop_pid "$pid"
    local lost=$(( NEVENTS - count )); (( lost < 0 )) && lost=0
    if (( lost > 0 )); then
        echo "$tag $who lost=$lost"
    else
        echo "$tag $who rate=$(per_second "$NEVENTS" $((t1 - t0))) cpu_ticks=$((cpu1 - cpu0))"
    fi
    rm -rf "$run"
}

# ---------------------------------------------------------------- X: a program per file
start_X() {
    local who=$1 run=$2
    case $who in
    inotifier)
        cat >"$run/inotifier.toml" <<EOF
[daemon]
pid_file = "inotifier.pid"
log_level = "warn"
[[watch]]
path = "w"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/usr/bin/touch", "$run/done/{name}"]
EOF
        "$INOTIFIER" run -c "$run/inotifier.toml" >/dev/null 2>"$run/err" &
        echo $! ;;
    incron)
        # incrond reads every table in /etc/incron.d; $# is the file name. It runs the command
        # through /bin/sh, so this only works for names without shell syntax.
        echo "$run/w IN_CLOSE_WRITE /usr/bin/touch $run/done/\$#" >"$INCRON_TABLE"
        incrond -n >/dev/null 2>"$run/err" &
        echo $! ;;
    loop)
        # What a shell user writes; one touch at a time.
        (inotifywait -q -m -e close_write --format '%f' "$run/w" 2>"$run/err" \
            | while IFS= read -r f; do /usr/bin/touch "$run/done/$f"; done) >/dev/null &
        echo $! ;;
    esac
}

run_X() {
    local who=$1 i=$2 run pid t0 t1 count
    run=$MNT/X-$who-$i
    mkdir -p "$run/w" "$run/done"
    pid=$(start_X "$who" "$run"); PIDS+=("$pid")
    wait_for 30 bash -c "echo > '$run/w/probe'; [[ -e '$run/done/probe' ]]" \
        || die "$who did not start: $(cat "$run/err")"
    t0=$(now_us)
    "$BUILD/gen" "$run/w" "$NEXEC" >/dev/null
    count=$(wait_count files "$run/done" $((NEXEC + 1)))
    t1=$(now_us)
    if [[ $who == loop ]]; then pkill -TERM -P "$pid" 2>/dev/null || true; fi
    stop_pid "$pid"
    rm -f "$INCRON_TABLE"
    local lost=$(( NEXEC + 1 - count )); (( lost < 0 )) && lost=0
    if (( lost > 0 )); then
        echo "X $who lost=$lost"
    else
        echo "X $who rate=$(per_second "$NEXEC" $((t1 - t0)))"
    fi
    rm -rf "$run"
}

# ---------------------------------------------------------------- run and report
declare -A RATES LOSSES CPU
order_J=(raw inotifier inotifywait)
order_X=(inotifier incron loop)
echo $((NEVENTS + 16384)) >"$MAXQ"
for i in $(seq "$REPEAT"); do
    for mode in live queued; do
        for who in "${order_J[@]}"; do
            line=$(run_J "$mode" "$who" "$i"); log "$line"
            t=${line%% *}
            [[ $line =~ rate=([0-9]+) ]] && RATES[$t-$who]+=" ${BASH_REMATCH[1]}"
            [[ $line =~ cpu_ticks=([0-9]+) ]] && CPU[$t-$who]+=" ${BASH_REMATCH[1]}"
            [[ $line =~ lost=([0-9]+) ]] && LOSSES[$t-$who]+=" ${BASH_REMATCH[1]}"
        done
    done
    for who in "${order_X[@]}"; do
        line=$(run_X "$who" "$i"); log "$line"
        [[ $line =~ rate=([0-9]+) ]] && RATES[X-$who]+=" ${BASH_REMATCH[1]}"
        [[ $line =~ lost=([0-9]+) ]] && LOSSES[X-$who]+=" ${BASH_REMATCH[1]}"
    done
    # alternate the order between rounds, so that neither side always runs first
    order_J=($(printf '%s\n' "${order_J[@]}" | tac)); order_X=($(printf '%s\n' "${order_X[@]}" | tac))
done

med() { median ${RATES[$1]:-}; }
lost_note() { [[ -n ${LOSSES[$1]:-} ]] && echo " (lost events in runs:${LOSSES[$1]})" || true; }
echo
cpu_ms() { ticks_ms ${CPU[$1]:-}; }
echo "J: $NEVENTS files created, events/s until every one is in the output file, and the"
echo "watcher's CPU time (user+sys) for the burst (medians of $REPEAT)"
echo "| | events/s | vs inotifier | CPU ms | CPU vs inotifier |"
echo "|---|---|---|---|---|"
for who in raw inotifier inotifywait; do
    echo "| $who | $(med J-$who)$(lost_note J-$who) | $(ratio "$(med J-$who)" "$(med J-inotifier)") | $(cpu_ms J-$who) | $(ratio "$(cpu_ms J-$who)" "$(cpu_ms J-inotifier)") |"
done
echo
echo "Q: the same $NEVENTS events queued in the kernel while the watcher was stopped, drained"
echo "into the output file once it continued (medians of $REPEAT)"
echo "| | events/s | vs inotifier | CPU ms | CPU vs inotifier |"
echo "|---|---|---|---|---|"
for who in raw inotifier inotifywait; do
    echo "| $who | $(med Q-$who)$(lost_note Q-$who) | $(ratio "$(med Q-$who)" "$(med Q-inotifier)") | $(cpu_ms Q-$who) | $(ratio "$(cpu_ms Q-$who)" "$(cpu_ms Q-inotifier)") |"
done
echo
echo "X: $NEXEC files written, programs run per second until every one ran (median of $REPEAT)"
echo "| | programs/s | vs inotifier |"
echo "|---|---|---|"
for who in inotifier incron loop; do
    echo "| $who | $(med X-$who)$(lost_note X-$who) | $(ratio "$(med X-$who)" "$(med X-inotifier)") |"
done
