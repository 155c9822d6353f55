#!/usr/bin/env bash
# Benchmark inotifier against a minimal C inotify reader (raw) and inotifywait.
# Run as root (it mounts a tmpfs): sudo bash bench/run.sh. See bench/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NFILES=${BENCH_FILES:-100000}
NDIRS=${BENCH_DIRS:-10000}
NLAT=${BENCH_LATENCY_N:-2000}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}

source "$HERE/lib.sh"
WAIT_POLL=0.05

# ---------------------------------------------------------------- cleanup
MNT=""
PIDS=()    # every background process we start; the trap kills them by PID
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # give them a moment to exit on their own, then make sure
    for _ in $(seq 50); do
        local alive=0
        for pid in "${PIDS[@]}"; do if kill -0 "$pid" 2>/dev/null; then alive=1; fi; done
        (( alive )) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $MNT ]]; then
        # lazy unmount as a last resort, so a stuck process cannot leave the mount behind
        if mountpoint -q "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
        rmdir "$MNT" 2>/dev/null || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- helpers
# key=value lines written by spawn; builtins only, no fork per poll
info_get() {
    local k v
    while IFS='=' read -r k v; do [[ $k == "$2" ]] && { echo "$v"; return 0; }; done <"$1"
    return 1
}
has_key() { info_get "$@" >/dev/null; }

# Drop reaped PIDs from PIDS, so the trap cannot hit a reused PID.
forget() {
    local p keep=()
    for p in "${PIDS[@]}"; do [[ " $* " == *" $p "* ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

# value of key $1 in a "k=v k=v" line $2 (latency's output)
field() { sed -n "s/.*\b$1=\([-0-9]*\).*/\1/p" <<<"$2"; }

minimum() { numbers "$@" | awk 'NR == 1 {print; found = 1} END {if (!found) print "-"}'; }

# at_most A B: true if A is a number and A <= B
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && a + 0 <= b + 0) }'; }

# target DESCRIPTION MEASURED CMD...: a table row, PASS if CMD succeeds
target() {
    local desc=$1 measured=$2; shift 2
    if "$@"; then echo "| $desc | $measured | PASS |"; else echo "| $desc | $measured | FAIL |"; fi
}

# Scenario Bc: what a recursive watcher of changes asks for (0xfce), without the read events
# (IN_ACCESS, IN_OPEN, IN_CLOSE_NOWRITE) that the default ALL_EVENTS of scenario B includes.
CHANGES='IN_CREATE|IN_DELETE|IN_MOVE|IN_CLOSE_WRITE|IN_MODIFY|IN_ATTRIB|IN_DELETE_SELF|IN_MOVE_SELF'

# Watch command and ready marker for watcher $1 in scenario $2 on dir $3.
# Sets CMD (array) and READY.
watcher_cmd() {
    local w=$1 scen=$2 dir=$3
    case $w in
    raw)
        READY="ready"
        case $scen in
        A) CMD=("$BUILD/raw_reader" -m 256 "$dir") ;;   # IN_CREATE
        B) CMD=("$BUILD/raw_reader" -r "$dir") ;;
        Bc) CMD=("$BUILD/raw_reader" -r -m 0xfce "$dir") ;;  # the changes, no read events
        C) CMD=("$BUILD/raw_reader" -m 264 "$dir") ;;   # IN_CREATE|IN_CLOSE_WRITE
        esac ;;
    ours)
        READY="ready"
        case $scen in
        A) CMD=("$INOTIFIER" watch -e IN_CREATE "$dir" --format json) ;;
        B) CMD=("$INOTIFIER" watch -r "$dir") ;;
        Bc) CMD=("$INOTIFIER" watch -r -e "$CHANGES" "$dir") ;;
        C) CMD=("$INOTIFIER" watch -e 'IN_CREATE|IN_CLOSE_WRITE' "$dir" --format json) ;;
        esac ;;
    inotifywait)
        # q_overflow: without it in -e, inotifywait drops the overflow silently
        READY="Watches established."
        case $scen in
        A) CMD=(inotifywait -m -e 'create,q_overflow' --format '%w%f %e' "$dir") ;;
        B) CMD=(inotifywait -m -r "$dir") ;;
        Bc) CMD=(inotifywait -m -r -e 'create,delete,move,close_write,modify,attrib,delete_self,move_self' "$dir") ;;
        C) CMD=(inotifywait -m -e 'create,close_write,q_overflow' --format '%w%f %e' "$dir") ;;
        esac ;;
    esac
}

# start_watcher W SCEN DIR RUNDIR [STDOUT]: spawn the watcher under bench/spawn
# (which times it), wait until it is ready. Sets WPID (watcher) and HPID (spawn).
# Returns 1 if it never got ready.
start_watcher() {
    local w=$1 scen=$2 dir=$3 run=$4 out=${5:-$4/out}
    watcher_cmd "$w" "$scen" "$dir"
    : >"$run/info"   # exists before spawn writes it, so polling it never errors
    "$BUILD/spawn" -r "$READY" -o "$out" -e "$run/err" -t 120 -- "${CMD[@]}" >"$run/info" 3>&- &
    HPID=$!
    PIDS+=("$HPID")
    wait_for 10 has_key "$run/info" pid || die "spawn did not start: $w"
    WPID=$(info_get "$run/info" pid)
    PIDS+=("$WPID")
    # spawn writes ready_us on success or timeout, exit= if the watcher died first
    wait_for 130 eval "has_key '$run/info' ready_us || has_key '$run/info' exit" || true
    if [[ $(info_get "$run/info" ready_us) =~ ^[0-9]+$ ]]; then return 0; fi
    log "  $w did not get ready; its stderr:"
    sed 's/^/    /' "$run/err" >&2 || true
    stop_watcher "$run"
    return 1
}

# stop_watcher RUNDIR: SIGTERM by PID, wait for spawn to collect its rusage.
stop_watcher() {
    local run=$1
    kill -TERM "$WPID" 2>/dev/null || true
    if ! wait_for 10 has_key "$run/info" cpu_us; then
        log "  pid $WPID ignored SIGTERM for 10 s, killing it"
        kill -KILL "$WPID" 2>/dev/null || true
    fi
    wait "$HPID" 2>/dev/null || true
    forget "$WPID" "$HPID"
}

# Wait until FILE has not grown for 1 s (at most $2 seconds in all).
wait_quiet() {
    local file=$1 limit=$2 last=-1 size stable=0
    local deadline=$(( $(now_us) + limit * 1000000 ))
    while (( $(now_us) < deadline )); do
        size=$(stat -c %s "$file")
        if (( size == last )); then
            (( ++stable >= 10 )) && return 0
        else
            stable=0 last=$size
        fi
        sleep 0.1
    done
    log "  output still growing after ${limit}s"
}

# ---------------------------------------------------------------- setup
(( EUID == 0 )) || die "must run as root (it mounts a tmpfs)"

mkdir -p "$BUILD"
for prog in raw_reader gen spawn latency; do
    gcc -O2 -Wall -o "$BUILD/$prog" "$HERE/$prog.c"
done

if ! command -v inotifywait >/dev/null; then
    log "installing inotify-tools"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq inotify-tools; } \
        >"$BUILD/apt.log" 2>&1 || die "apt-get install inotify-tools failed, see $BUILD/apt.log"
fi

WATCHERS=(raw ours inotifywait)
if [[ ${BENCH_SKIP_INOTIFIER:-0} == 1 ]]; then
    log "BENCH_SKIP_INOTIFIER=1: skipping inotifier, benchmarking raw and inotifywait only"
    WATCHERS=(raw inotifywait)
elif [[ ! -x $INOTIFIER ]]; then
    [[ -z ${INOTIFIER_BIN:-} ]] || die "INOTIFIER_BIN=$INOTIFIER_BIN is not an executable"
    command -v cargo >/dev/null || die "no $INOTIFIER and no cargo to build it (BENCH_SKIP_INOTIFIER=1 skips it)"
    log "building inotifier (cargo build --release -p inotifier-cli)"
    (cd "$REPO" && cargo build --release -p inotifier-cli)
    [[ -x $INOTIFIER ]] || die "cargo build did not produce $INOTIFIER"
fi

MNT=$(mktemp -d /tmp/inotifier-bench.XXXXXX)
mount -t tmpfs -o size=4g tmpfs "$MNT"

# The order of watchers for repetition $1: alternate, so that neither always
# runs first (cold caches) or last (a machine that has warmed up or got busier).
order() { if (( $1 % 2 == 0 )); then echo "${WATCHERS[@]}"; else printf '%s\n' "${WATCHERS[@]}" | tac | tr '\n' ' '; fi; }

{
    echo "## Machine"
    echo
    echo "- cores: $(nproc)"
    echo "- cpu: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "- kernel: $(uname -r)"
    echo "- max_queued_events: $(cat /proc/sys/fs/inotify/max_queued_events)"
    echo "- max_user_watches: $(cat /proc/sys/fs/inotify/max_user_watches)"
    echo "- inotifywait: $(inotifywait --help 2>&1 | head -1)"
    if [[ " ${WATCHERS[*]} " == *" ours "* ]]; then
        echo "- inotifier: $INOTIFIER ($("$INOTIFIER" --version </dev/null 2>/dev/null || echo 'version unknown'))"
    fi
    echo "- repeats: $REPEAT (medians reported)"
    echo
} | tee "$BUILD/last-results.md"

FAILED=""
declare -A D_FILES A_FILES A_OVERFLOW A_CPU A_GEN B_READY B_RSS Bc_READY Bc_RSS C_P50 C_P90 C_P99 C_MAX C_MISSED

# ---------------------------------------------------------------- scenario A
log "== A: burst of $NFILES creates"
for ((rep = 0; rep < REPEAT; rep++)); do
    for w in $(order "$rep"); do
        run=$MNT/a-$w-$rep; dir=$run/watched
        mkdir -p "$dir"
        if ! start_watcher "$w" A "$dir" "$run"; then
            FAILED+="A:$w#$rep "; continue
        fi
        "$BUILD/gen" "$dir" "$NFILES" >"$run/gen" &
        gpid=$!; PIDS+=("$gpid")
        wait "$gpid"; forget "$gpid"
        gen_s=$(<"$run/gen")
        wait_quiet "$run/out" 60
        stop_watcher "$run"
        files=$(grep -o 'f[0-9]\{7\}' "$run/out" | sort -u | wc -l)
        case $w in
        raw) overflow=$(awk '$2 == "0x4000"' "$run/out" | wc -l) ;;
        ours) overflow=$(grep -c 'IN_Q_OVERFLOW' "$run/out" || true) ;;
        inotifywait) overflow=$(cat "$run/out" "$run/err" | grep -c 'Q_OVERFLOW' || true) ;;
        esac
        cpu_ms=$(awk -v us="$(info_get "$run/info" cpu_us)" 'BEGIN {printf "%.1f", us / 1000}')
        log "  $w #$rep: files=$files overflow=$overflow cpu=${cpu_ms}ms gen=${gen_s}s exit=$(info_get "$run/info" exit)"
        A_FILES[$w]+="$files "; A_OVERFLOW[$w]+="$overflow "; A_CPU[$w]+="$cpu_ms "; A_GEN[$w]+="$gen_s "
        rm -rf "$run"   # 100k files take 400 MB of tmpfs pages
    done
done

# ---------------------------------------------------------------- scenario D
# The same burst while the watcher is stopped (SIGSTOP): the kernel queue overflows for every
# watcher, so this shows what each one does about the events the kernel dropped.
log "== D: burst of $NFILES creates while the watcher is stopped"
for ((rep = 0; rep < REPEAT; rep++)); do
    for w in $(order "$rep"); do
        run=$MNT/d-$w-$rep; dir=$run/watched
        mkdir -p "$dir"
        if ! start_watcher "$w" A "$dir" "$run"; then
            FAILED+="D:$w#$rep "; continue
        fi
        kill -STOP "$WPID"
        "$BUILD/gen" "$dir" "$NFILES" >/dev/null
        kill -CONT "$WPID"
        wait_quiet "$run/out" 60
        stop_watcher "$run"
        files=$(grep -o 'f[0-9]\{7\}' "$run/out" | sort -u | wc -l)
        log "  $w #$rep: files=$files"
        D_FILES[$w]+="$files "
        rm -rf "$run"
    done
done

# ---------------------------------------------------------------- scenario B
tree=$MNT/tree
"$BUILD/gen" --tree "$tree" "$NDIRS" >/dev/null
for scen in B Bc; do
    log "== $scen: recursive setup on $NDIRS directories"
    # shellcheck disable=SC2178  # namerefs to the associative arrays of this scenario
    declare -n READY_OF="${scen}_READY" RSS_OF="${scen}_RSS"
    for ((rep = 0; rep < REPEAT; rep++)); do
        for w in $(order "$rep"); do
            run=$MNT/$scen-$w-$rep
            mkdir -p "$run"
            if ! start_watcher "$w" "$scen" "$tree" "$run"; then
                FAILED+="$scen:$w#$rep "; continue
            fi
            ready_ms=$(awk -v us="$(info_get "$run/info" ready_us)" 'BEGIN {printf "%.1f", us / 1000}')
            rss=$(info_get "$run/info" rss_kib)
            stop_watcher "$run"
            log "  $w #$rep: ready=${ready_ms}ms rss=${rss}KiB"
            # shellcheck disable=SC2004  # associative arrays: $w is a key, not arithmetic
            READY_OF[$w]+="$ready_ms "
            # shellcheck disable=SC2004
            RSS_OF[$w]+="$rss "
        done
    done
    unset -n READY_OF RSS_OF
done

# ---------------------------------------------------------------- scenario C
log "== C: latency, $NLAT creates"
for ((rep = 0; rep < REPEAT; rep++)); do
    for w in $(order "$rep"); do
        run=$MNT/c-$w-$rep; dir=$run/watched
        mkdir -p "$dir"
        # The watcher writes into a FIFO that latency reads, so latency wakes up
        # the moment a line is written. fd 3 holds the FIFO open read-write so
        # neither side's open() blocks waiting for the other.
        mkfifo "$run/fifo"
        exec 3<>"$run/fifo"
        if ! start_watcher "$w" C "$dir" "$run" "$run/fifo"; then
            exec 3>&-; FAILED+="C:$w#$rep "; continue
        fi
        "$BUILD/latency" -n "$NLAT" "$dir" <&3 >"$run/latency" &
        lpid=$!; PIDS+=("$lpid")
        lat_ok=1; wait "$lpid" || lat_ok=0
        forget "$lpid"
        exec 3>&-
        stop_watcher "$run"
        res=$(<"$run/latency")
        log "  $w #$rep: $res"
        if (( !lat_ok )); then FAILED+="C:$w#$rep "; continue; fi
        C_P50[$w]+="$(field p50 "$res") "; C_P90[$w]+="$(field p90 "$res") "; C_P99[$w]+="$(field p99 "$res") "
        C_MAX[$w]+="$(field max "$res") "; C_MISSED[$w]+="$(field missed "$res") "
    done
done

# ---------------------------------------------------------------- report
# The arrays hold space-separated per-run values; word splitting is wanted here.
# shellcheck disable=SC2086
{
    echo "## A: burst of $NFILES creates, IN_CREATE only (median of $REPEAT)"
    echo
    echo "| watcher | files reported (min) | runs with overflow | CPU ms (user+sys) | CPU vs raw | gen s |"
    echo "|---|---|---|---|---|---|"
    for w in "${WATCHERS[@]}"; do
        cpu=$(median ${A_CPU[$w]:-}); over=0
        for o in ${A_OVERFLOW[$w]:-}; do if (( o > 0 )); then over=$((over + 1)); fi; done
        echo "| $w | $(median ${A_FILES[$w]:-}) ($(minimum ${A_FILES[$w]:-})) | $over | $cpu | $(ratio "$cpu" "$(median ${A_CPU[raw]:-})") | $(median ${A_GEN[$w]:-}) |"
    done
    echo
    echo "## D: the same burst while the watcher is stopped: the kernel queue overflows (median of $REPEAT)"
    echo
    echo "| watcher | files reported (min) |"
    echo "|---|---|"
    for w in "${WATCHERS[@]}"; do
        echo "| $w | $(median ${D_FILES[$w]:-}) ($(minimum ${D_FILES[$w]:-})) |"
    done
    echo
    for scen in B Bc; do
        # shellcheck disable=SC2178  # namerefs to the associative arrays of this scenario
        declare -n READY_OF="${scen}_READY" RSS_OF="${scen}_RSS"
        if [[ $scen == B ]]; then what="default mask (ALL_EVENTS)"; else what="mask of changes (0xfce)"; fi
        echo "## $scen: recursive setup, $NDIRS directories + root, $what (median of $REPEAT)"
        echo
        echo "| watcher | ready ms | ready vs raw | RSS KiB | RSS vs raw |"
        echo "|---|---|---|---|---|"
        for w in "${WATCHERS[@]}"; do
            r=$(median ${READY_OF[$w]:-}); m=$(median ${RSS_OF[$w]:-})
            echo "| $w | $r | $(ratio "$r" "$(median ${READY_OF[raw]:-})") | $m | $(ratio "$m" "$(median ${RSS_OF[raw]:-})") |"
        done
        echo
        unset -n READY_OF RSS_OF
    done
    echo "## C: latency, start of create to its line, $NLAT files, µs (median of $REPEAT runs)"
    echo
    echo "| watcher | p50 | p90 | p99 | max | missed | p99 vs raw |"
    echo "|---|---|---|---|---|---|---|"
    for w in "${WATCHERS[@]}"; do
        p99=$(median ${C_P99[$w]:-})
        echo "| $w | $(median ${C_P50[$w]:-}) | $(median ${C_P90[$w]:-}) | $p99 | $(median ${C_MAX[$w]:-}) | $(median ${C_MISSED[$w]:-}) | $(ratio "$p99" "$(median ${C_P99[raw]:-})") |"
    done
    if [[ -n $FAILED ]]; then
        echo
        echo "Runs that failed (left out of the medians): $FAILED"
    fi

    if [[ " ${WATCHERS[*]} " == *" ours "* ]]; then
        files=$(minimum ${A_FILES[ours]:-})
        cpu=$(ratio "$(median ${A_CPU[ours]:-})" "$(median ${A_CPU[raw]:-})")
        ready=$(ratio "$(median ${B_READY[ours]:-})" "$(median ${B_READY[raw]:-})")
        ready_changes=$(ratio "$(median ${Bc_READY[ours]:-})" "$(median ${Bc_READY[raw]:-})")
        rss=$(printf '%s\n' "$(median ${B_RSS[ours]:-})" "$(median ${Bc_RSS[ours]:-})" | sort -n | tail -1)
        p99=$(ratio "$(median ${C_P99[ours]:-})" "$(median ${C_P99[raw]:-})")
        nfail=$(tr ' ' '\n' <<<"$FAILED" | grep -c ':ours#' || true)
        echo
        echo "## Targets for inotifier"
        echo
        echo "| target | measured | |"
        echo "|---|---|---|"
        target "every run of inotifier completed" "$nfail failed" test "$nfail" -eq 0
        target "A: all files reported in every run" "min $files of $NFILES" at_most "$NFILES" "$files"
        target "A: CPU at most 1.3x raw" "$cpu" at_most "${cpu%x}" 1.3
        dfiles=$(minimum ${D_FILES[ours]:-})
        target "D: all files reported after an overflow" "min $dfiles of $NFILES" at_most "$NFILES" "$dfiles"
        target "B: ready at most 1.2x raw (ALL_EVENTS)" "$ready" at_most "${ready%x}" 1.2
        target "Bc: ready at most 1.2x raw (changes)" "$ready_changes" at_most "${ready_changes%x}" 1.2
        target "B: RSS at most 8 MiB" "$rss KiB" at_most "$rss" 8192
        target "C: p99 latency at most 2x raw" "$p99" at_most "${p99%x}" 2
    fi
} | tee -a "$BUILD/last-results.md"
