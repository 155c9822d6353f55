#!/usr/bin/env bash
# Benchmark the journal: `inotifier run` (jsonl processor) with the journal off, on a tmpfs and
# on this machine's disk, against inotifywait and the minimal C reader in the same runs.
# Run as root (it mounts a tmpfs and sets fs.inotify.max_queued_events):
# sudo bash bench/journal.sh. See bench/README.md.
#
#   L  live: gen creates BENCH_EVENTS files while the watcher reads, with the kernel's default
#      queue (16384 events): what a watcher does not read in time is lost, unless it recovers
#      it (inotifier rescans after an overflow).
#   Q  queued: the burst waits in the kernel while the watcher is stopped (SIGSTOP, queue
#      raised so nothing overflows), then it is continued: events/s from then until every
#      event is written out and, with the journal, acknowledged in it (no event pending).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NEVENTS=${BENCH_EVENTS:-100000}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}
# A directory on a real disk for the journal (not a tmpfs): fsync costs what it costs here.
DISK_DIR=${BENCH_DISK_DIR:-/var/tmp}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and sets fs.inotify.max_queued_events"

DISK=""
cleanup_extra() { [[ -z $DISK ]] || rm -rf "$DISK"; }
install_cleanup

lines_of() { [[ -e $1 ]] && wc -l <"$1" || echo 0; }

# wait_lines FILE N: until FILE has N lines or has not grown for 3 s; prints the count.
wait_lines() {
    local file=$1 n=$2 count last=-1 still=0
    while :; do
        count=$(lines_of "$file")
        (( count >= n )) && break
        if (( count == last )); then still=$((still + 1)); (( still >= 150 )) && break
        else still=0; last=$count; fi
        sleep 0.02
    done
    echo "$count"
}

# wait_acked CONFIG: until the journal has nothing pending (or 30 s passed).
wait_acked() {
    local pending
    for _ in $(seq 1500); do
        pending=$("$INOTIFIER" journal -c "$1" summary 2>/dev/null | awk 'NR > 1 { s += $2 } END { print s + 0 }')
        (( pending == 0 )) && return 0
        sleep 0.02
    done
    return 1
}

# ---------------------------------------------------------------- build
mkdir -p "$BUILD"
for tool in gen raw_reader; do
    [[ $BUILD/$tool -nt $HERE/$tool.c ]] || gcc -O2 -Wall -o "$BUILD/$tool" "$HERE/$tool.c"
done
command -v inotifywait >/dev/null || apt-get install -y -q inotify-tools >/dev/null
if [[ -z ${INOTIFIER_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --locked -q -p inotifier-cli)
fi
MNT=$(mktemp -d /tmp/inotifier-jbench.XXXXXX)
mount -t tmpfs -o size=2g tmpfs "$MNT"
chmod 700 "$MNT"
DISK=$(mktemp -d "$DISK_DIR/inotifier-jbench.XXXXXX")
log "journal on disk in $DISK ($(df --output=fstype "$DISK" | tail -1 | tr -d ' ')), tmpfs at $MNT"

# start WHO RUN: starts the watcher of RUN/w writing RUN/out; echoes its pid.
start() {
    local who=$1 run=$2 journal
    case $who in
    off|tmpfs|disk)
        case $who in
        off) journal='enabled = false' ;;
        tmpfs) journal="path = \"$run/inotifier.journal\"" ;;
        disk) journal="path = \"$DISK/$(basename "$run").journal\"" ;;
        esac
        cat >"$run/inotifier.toml" <<EOF
[daemon]
pid_file = "inotifier.pid"
log_level = "warn"
[journal]
$journal
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

# run MODE WHO I: prints "TAG WHO count=C rate=R cpu_ticks=T".
run() {
    local mode=$1 who=$2 i=$3 run pid t0 t1 count tag cpu0 cpu1
    tag=$([[ $mode == live ]] && echo L || echo Q)
    run=$MNT/$tag-$who-$i
    mkdir -p "$run/w"
    pid=$(start "$who" "$run"); PIDS+=("$pid")
    wait_for 30 bash -c "rm -f '$run/w/probe'; touch '$run/w/probe'; grep -q probe '$run/out' 2>/dev/null" \
        || die "$who did not start: $(cat "$run/err")"
    local base; base=$(lines_of "$run/out")
    cpu0=$(cpu_ticks "$pid")
    t0=$(burst "$mode" "$pid" "$run/w" "$NEVENTS")
    # The probes' lines are not the burst's; the overflow line (raw, inotifywait) is not either.
    count=$(( $(wait_lines "$run/out" $((base + NEVENTS))) - base ))
    if [[ $who == tmpfs || $who == disk ]]; then
        wait_acked "$run/inotifier.toml" || log "$who: events still pending after 30 s"
    fi
    t1=$(now_us)
    cpu1=$(cpu_ticks "$pid")
    stop_pid "$pid"
    # Lines about the burst's files only (gen names them f<number>).
    count=$(grep -c '[/" ]f[0-9]' "$run/out" || true)
    echo "$tag $who count=$count rate=$(per_second "$count" $((t1 - t0))) cpu_ticks=$((cpu1 - cpu0))"
    rm -rf "$run"
}

# ---------------------------------------------------------------- run and report
WHO=(off tmpfs disk inotifywait raw)
declare -A RATES LOST CPU
order=("${WHO[@]}")
for i in $(seq "$REPEAT"); do
    for mode in live queued; do
        # Queued: room for every kernel event of the burst. With the journal, the engine also
        # follows content changes (for the catch-up snapshot): gen's files make three events.
        if [[ $mode == live ]]; then echo 16384 >"$MAXQ"; else echo $((4 * NEVENTS + 16384)) >"$MAXQ"; fi
        for who in "${order[@]}"; do
            line=$(run "$mode" "$who" "$i"); log "$line"
            [[ $line =~ ^([LQ])\ [a-z]+\ count=([0-9]+)\ rate=([0-9]+)\ cpu_ticks=([0-9]+) ]] || die "bad line: $line"
            key=${BASH_REMATCH[1]}-$who
            lost=$(( NEVENTS - BASH_REMATCH[2] )); (( lost < 0 )) && lost=0
            RATES[$key]+=" ${BASH_REMATCH[3]}"
            LOST[$key]+=" $lost"
            CPU[$key]+=" ${BASH_REMATCH[4]}"
        done
    done
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
done

med() { median ${RATES[$1]:-}; }
cpu_ms() { ticks_ms ${CPU[$1]:-}; }
lost_of() { local l; l=(${LOST[$1]:-}); echo "$(median "${l[@]}") (worst $(printf '%s\n' "${l[@]}" | sort -g | tail -1))"; }
table() {
    local tag=$1 who
    echo "| | events/s | vs journal off | lost | CPU ms | CPU vs journal off |"
    echo "|---|---|---|---|---|---|"
    for who in "${WHO[@]}"; do
        echo "| $who | $(med "$tag-$who") | $(ratio "$(med "$tag-$who")" "$(med "$tag-off")") | $(lost_of "$tag-$who") | $(cpu_ms "$tag-$who") | $(ratio "$(cpu_ms "$tag-$who")" "$(cpu_ms "$tag-off")") |"
    done
}
{
    echo "L: gen creates $NEVENTS files while the watcher reads, max_queued_events 16384"
    echo "(medians of $REPEAT; with the journal, until every event is also acknowledged)"
    table L
    echo
    echo "Q: the same $NEVENTS events queued while the watcher was stopped, then drained"
    echo "(medians of $REPEAT; with the journal, until every event is also acknowledged)"
    table Q
    echo
    echo "Per run (events/s):"
    for key in "${!RATES[@]}"; do echo "- $key:${RATES[$key]} (lost:${LOST[$key]})"; done | sort
} | tee "$BUILD/last-journal-results.md"
