#!/usr/bin/env bash
# Benchmark delivery to brokers: `inotifier run` with the journal on disk delivering every
# event to Celery over Redis, Celery over AMQP (RabbitMQ), a Redis stream and NATS JetStream,
# against the jsonl processor (no broker) in the same runs, and against each broker's own Python
# client sending as many messages with confirmation (bench/broker_peer.py). Needs the machine's
# Redis (6379), RabbitMQ (5672, guest/guest) and NATS with JetStream (4222), and .venv (made by
# scripts/venv.sh). Run as root (it mounts a tmpfs and raises fs.inotify.max_queued_events):
# sudo bash bench/brokers.sh. See bench/README.md.
#
# Each run queues BENCH_EVENTS creations in the kernel while the daemon is stopped (SIGSTOP),
# continues it, and times until every event is journaled, delivered, confirmed by the broker
# and acknowledged in the journal (nothing pending); then it counts what the broker holds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
BUILD=$HERE/build
REPEAT=${BENCH_REPEAT:-3}
NEVENTS=${BENCH_EVENTS:-20000}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}
PYTHON=$REPO/.venv/bin/python
DISK_DIR=${BENCH_DISK_DIR:-/var/tmp}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and sets fs.inotify.max_queued_events"
[[ -x $PYTHON ]] || die "no .venv: run scripts/venv.sh (or scripts/test.sh) first"

DISK=""
NAME=""
TARGET=""
cleanup_extra() {
    [[ -z $NAME ]] || "$PYTHON" "$HERE/broker_peer.py" cleanup "$TARGET" "$NAME" || true
    [[ -z $DISK ]] || rm -rf "$DISK"
}
install_cleanup

peer() { "$PYTHON" "$HERE/broker_peer.py" "$@"; }

# pending CONFIG: events not yet acknowledged in the journal; last_acked CONFIG: the last
# event id acknowledged (one processor per run).
pending() { "$INOTIFIER" journal -c "$1" summary 2>/dev/null | awk 'NR > 1 { s += $2 } END { print s + 0 }'; }
last_acked() { "$INOTIFIER" journal -c "$1" summary 2>/dev/null | awk 'NR > 1 && $5 != "-" { print $5 }' | tail -1; }
# all_acked CONFIG ID: event ID is acknowledged and nothing is pending.
all_acked() {
    local summary
    summary=$("$INOTIFIER" journal -c "$1" summary 2>/dev/null) || return 1
    awk -v id="$2" 'NR > 1 { pending += $2; last = $5 } END { exit !(pending == 0 && last + 0 >= id) }' <<<"$summary"
}

# ---------------------------------------------------------------- build
mkdir -p "$BUILD"
[[ $BUILD/gen -nt $HERE/gen.c ]] || gcc -O2 -Wall -o "$BUILD/gen" "$HERE/gen.c"
if [[ -z ${INOTIFIER_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --locked -q -p inotifier-cli)
fi
MNT=$(mktemp -d /tmp/inotifier-bbench.XXXXXX)
mount -t tmpfs -o size=1g tmpfs "$MNT"
chmod 700 "$MNT"
DISK=$(mktemp -d "$DISK_DIR/inotifier-bbench.XXXXXX")
# Room for every kernel event of the burst (gen makes three per file: create, modify, close):
# a queued run that overflowed would measure the rescan instead.
echo $((4 * NEVENTS + 16384)) >"$MAXQ"

# options TARGET NAME RUN: the [watch] processor and options of TARGET.
options() {
    case $1 in
    jsonl) printf 'processor = "jsonl"\n[watch.options]\npath = "%s/out"\n' "$3" ;;
    celery-redis) printf 'processor = "celery"\n[watch.options]\ntask = "bench.record"\nqueue = "%s"\nbroker_url = "redis://127.0.0.1:6379/0"\n' "$2" ;;
    celery-amqp) printf 'processor = "celery"\n[watch.options]\ntask = "bench.record"\nqueue = "%s"\n' "$2" ;;
    redis_stream) printf 'processor = "redis_stream"\n[watch.options]\nstream = "%s"\n' "$2" ;;
    jetstream) printf 'processor = "jetstream"\n[watch.options]\nsubject = "%s.{maskname}"\nstream = "%s"\n' "$2" "$2" ;;
    esac
}

# delivered TARGET NAME RUN: what the destination holds.
delivered() {
    if [[ $1 == jsonl ]]; then
        [[ -e $3/out ]] && wc -l <"$3/out" || echo 0
    else
        peer count "$1" "$2"
    fi
}

# run TARGET I: prints "TARGET count=C rate=R cpu_ticks=T".
run() {
    local target=$1 i=$2 run pid t0 t1 cpu0 cpu1 count name base acked
    run=$MNT/$target-$i
    name=inotifier-bbench-$target-$i-$$
    mkdir -p "$run/w"
    TARGET=$target NAME=$name
    [[ $target == jsonl ]] || peer prepare "$target" "$name"
    cat >"$run/inotifier.toml" <<EOF
[daemon]
pid_file = "inotifier.pid"
log_level = "warn"
[journal]
path = "$DISK/$target-$i.journal"
[[watch]]
path = "w"
events = "IN_CREATE"
$(options "$target" "$name" "$run")
EOF
    CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// \
        "$INOTIFIER" run -c "$run/inotifier.toml" >/dev/null 2>"$run/err" &
    pid=$!; PIDS+=("$pid")
    # Once the watch is in place, a probe event, delivered: the daemon is connected to its
    # broker.
    WAIT_POLL=0.1 wait_for 30 running "$run/inotifier.toml" || die "$target did not start: $(cat "$run/err")"
    touch "$run/w/probe"
    WAIT_POLL=0.1 wait_for 30 probe_delivered "$target" "$name" "$run" \
        || die "$target: the probe was not delivered: $(cat "$run/err")"
    WAIT_POLL=0.05 wait_for 30 nothing_pending "$run/inotifier.toml" || die "$target: the probe stays pending"
    base=$(delivered "$target" "$name" "$run")
    acked=$(last_acked "$run/inotifier.toml")
    cpu0=$(cpu_ticks "$pid")
    t0=$(burst queued "$pid" "$run/w" "$NEVENTS")
    # Every event of the burst journaled (ids follow one another) and none pending.
    WAIT_POLL=0.02 wait_for 180 all_acked "$run/inotifier.toml" $((acked + NEVENTS)) \
        || log "$target: events still pending after 180 s"
    t1=$(now_us)
    cpu1=$(cpu_ticks "$pid")
    stop_pid "$pid"
    count=$(( $(delivered "$target" "$name" "$run") - base ))
    [[ $target == jsonl ]] || peer cleanup "$target" "$name"
    NAME=""
    echo "$target count=$count rate=$(per_second "$count" $((t1 - t0))) cpu_ticks=$((cpu1 - cpu0))"
    rm -rf "$run"
}

running() { "$INOTIFIER" status -c "$1" 2>/dev/null | grep -q '^state: *running'; }
probe_delivered() { (( $(delivered "$@") >= 1 )); }
nothing_pending() { (( $(pending "$1") == 0 )); }

# peer_run TARGET I: prints "TARGET rate=R" for the Python client alone.
peer_run() {
    local name=inotifier-bbench-peer-$1-$2-$$ line
    TARGET=$1 NAME=$name
    peer prepare "$1" "$name"
    line=$(peer peer "$1" "$name" "$NEVENTS")
    peer cleanup "$1" "$name"
    NAME=""
    echo "$1 $line"
}

# ---------------------------------------------------------------- run and report
TARGETS=(jsonl celery-redis celery-amqp redis_stream jetstream)
declare -A RATES LOST CPU PEER
order=("${TARGETS[@]}")
for i in $(seq "$REPEAT"); do
    for target in "${order[@]}"; do
        line=$(run "$target" "$i"); log "$line"
        [[ $line =~ count=(-?[0-9]+)\ rate=([0-9]+)\ cpu_ticks=([0-9]+) ]] || die "bad line: $line"
        lost=$(( NEVENTS - BASH_REMATCH[1] ))
        RATES[$target]+=" ${BASH_REMATCH[2]}"
        LOST[$target]+=" $lost"
        CPU[$target]+=" ${BASH_REMATCH[3]}"
        if [[ $target != jsonl ]]; then
            line=$(peer_run "$target" "$i"); log "peer $line"
            [[ $line =~ rate=([0-9]+) ]] || die "bad peer line: $line"
            PEER[$target]+=" ${BASH_REMATCH[1]}"
        fi
    done
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
done

{
    echo "$NEVENTS events queued, then journaled (on disk), delivered, confirmed by the broker and"
    echo "acknowledged; medians of $REPEAT. Peer: the broker's Python client sending $NEVENTS messages"
    echo "with confirmation (no file watching)."
    echo
    echo "| destination | events/s | lost | CPU ms | vs jsonl | Python client msgs/s | vs Python client |"
    echo "|---|---|---|---|---|---|---|"
    for target in "${TARGETS[@]}"; do
        rate=$(median ${RATES[$target]}); peer_rate=$(median ${PEER[$target]:-})
        echo "| $target | $rate | $(median ${LOST[$target]}) | $(ticks_ms ${CPU[$target]}) | $(ratio "$rate" "$(median ${RATES[jsonl]})") | $peer_rate | $(ratio "$rate" "$peer_rate") |"
    done
    echo
    echo "Per run (events/s):"
    for target in "${TARGETS[@]}"; do echo "- $target:${RATES[$target]} (lost:${LOST[$target]}; peer:${PEER[$target]:-})"; done
} | tee "$BUILD/last-brokers-results.md"
