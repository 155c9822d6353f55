# Helpers shared by the benchmark scripts (run.sh, daemon.sh, django.sh, journal.sh); sourced,
# not run. A script using stop_pid keeps the PIDs it started in the array PIDS.

log() { printf '%s\n' "$*" >&2; }
die() { log "${0##*/}: $*"; exit 1; }

now_us() { echo "${EPOCHREALTIME/./}"; }

# wait_for SECONDS CMD...: polls CMD every WAIT_POLL seconds (default 0.02) until it succeeds;
# false at the deadline. Polls may run while a watcher is being timed: keep CMD cheap.
wait_for() {
    local limit=$1; shift
    local deadline=$(( $(now_us) + limit * 1000000 ))
    until "$@"; do
        (( $(now_us) < deadline )) || return 1
        sleep "${WAIT_POLL:-0.02}"
    done
}

numbers() { printf '%s\n' "$@" | { grep -E '^-?[0-9.]+$' || true; } | sort -g; }

# median of the numbers among its arguments; "-" if there are none
median() {
    numbers "$@" | awk '
        { v[NR] = $1 }
        END {
            if (!NR) { print "-"; exit }
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# ratio A B -> "1.23x", or "-" when either side is missing
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.2fx", a / b; else print "-" }'
}

# per_second COUNT MICROSECONDS
per_second() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", n / (us / 1e6) }'; }

# ticks_ms TICKS...: the median of CPU times in clock ticks, in milliseconds ("-" if none)
ticks_ms() {
    local m; m=$(median "$@")
    [[ $m == - ]] && echo - || awk -v t="$m" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.0f", t * 1000 / hz }'
}

# stop_pid PID: SIGTERM (after SIGCONT, in case it was stopped), SIGKILL after 15 s, reaped
# and dropped from PIDS, so that the exit trap cannot hit a reused pid.
stop_pid() {
    local pid=$1 keep=() p
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# install_cleanup: on exit (normal, error, INT or TERM), bench_cleanup restores what the script
# changed: it kills the PIDs in PIDS (TERM, then KILL after 5 s), runs the script's
# cleanup_extra function if it has one, restores fs.inotify.max_queued_events as it was when
# install_cleanup ran, and unmounts the tmpfs at MNT.
MNT=""
PIDS=()
MAXQ=/proc/sys/fs/inotify/max_queued_events
OLD_MAXQ=""
install_cleanup() {
    OLD_MAXQ=$(cat "$MAXQ")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
bench_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    [[ -n $OLD_MAXQ ]] && echo "$OLD_MAXQ" >"$MAXQ"
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if declare -F cleanup_extra >/dev/null; then cleanup_extra; fi
    if [[ -n $MNT ]]; then
        # lazy unmount as a last resort, so a stuck process cannot leave the mount behind
        if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
        rmdir "$MNT" 2>/dev/null || true
    fi
    exit "$rc"
}

# cpu_ticks PID: user+sys clock ticks the process has used (all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# burst MODE PID DIR N: gen creates N files in DIR, timed from its start (live: PID reads
# meanwhile) or, queued, from when PID is continued after the whole burst waited in the kernel
# while it was stopped. Echoes that start time (µs).
burst() {
    local mode=$1 pid=$2 dir=$3 n=$4 t0
    if [[ $mode == queued ]]; then
        kill -STOP "$pid"
        "$BUILD/gen" "$dir" "$n" >/dev/null
        t0=$(now_us)
        kill -CONT "$pid"
    else
        t0=$(now_us)
        "$BUILD/gen" "$dir" "$n" >/dev/null
    fi
    echo "$t0"
}

# start_peer WHO DIR OUT ERR: starts inotifywait or the minimal C reader on DIR (creations)
# writing one line per event to OUT; echoes its pid. Keeps nothing of the caller's stdout open.
start_peer() {
    local who=$1 dir=$2 out=$3 err=$4
    case $who in
    inotifywait)
        stdbuf -oL inotifywait -q -m -e create,q_overflow --format '%w%f %e' "$dir" >"$out" 2>"$err" & ;;
    raw)
        "$BUILD/raw_reader" -m 256 "$dir" >"$out" 2>"$err" & ;;
    *) die "unknown peer $who" ;;
    esac
    echo $!
}
