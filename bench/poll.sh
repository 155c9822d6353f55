#!/usr/bin/env bash
# What polling costs (issue 17): `inotifier watch -r --backend poll` on a tree of BENCH_FILES
# files (100,000, in directories of 1,000), idle (nothing changes), polled every second; its
# CPU over BENCH_SECONDS (20) seconds, as a share of one core. The peer is the least a poller
# must do each interval: `find TREE -printf '%s %T@\n'` (getdents and one stat per entry),
# run once a second over the same window. The tree is on a tmpfs and, the filesystem polling
# exists for, on a FUSE mount of it (bindfs).
#
#   sudo bash bench/poll.sh          (root: it mounts a tmpfs and bindfs)
#
# INOTIFIER_BIN (the release binary, built when missing). Table on stdout.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
FILES=${BENCH_FILES:-100000}
SECONDS_MEASURED=${BENCH_SECONDS:-20}
INOTIFIER=${INOTIFIER_BIN:-$REPO/target/release/inotifier}

source "$HERE/lib.sh"

[[ $(id -u) == 0 ]] || die "run as root: it mounts a tmpfs and a FUSE filesystem"
command -v bindfs >/dev/null || die "bindfs is needed (apt-get install bindfs)"
install_cleanup
FUSE=""
cleanup_extra() {
    if [[ -n $FUSE ]] && mountpoint -q "$FUSE"; then fusermount -u "$FUSE" || umount -l "$FUSE"; fi
    [[ -n $FUSE ]] && rmdir "$FUSE" 2>/dev/null || true
}
if [[ -z ${INOTIFIER_BIN:-} && ! -x $INOTIFIER ]]; then
    log "building the release binary"
    (cd "$REPO" && cargo build --release --locked -p inotifier-cli >&2)
fi

MNT=$(mktemp -d)
mount -t tmpfs -o size=1g tmpfs "$MNT"
mkdir "$MNT/tree"
log "making $FILES files"
python3 - "$MNT/tree" "$FILES" <<'EOF'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for index in range(count):
    directory = os.path.join(root, f"d{index // 1000:03}")
    if index % 1000 == 0:
        os.mkdir(directory)
    with open(os.path.join(directory, f"f{index:06}"), "w") as f:
        f.write("x")
EOF
FUSE=$(mktemp -d)
bindfs "$MNT/tree" "$FUSE"

hz=$(getconf CLK_TCK)
share() { awk -v t="$1" -v hz="$hz" -v s="$SECONDS_MEASURED" 'BEGIN { printf "%.1f%%", 100 * t / hz / s }'; }

# poller_share TREE: the watcher's CPU share of one core over the window, once it is ready.
poller_share() {
    local tree=$1 err out pid t0 t1
    err=$(mktemp); out=$(mktemp)
    "$INOTIFIER" watch -r --backend poll --poll-interval 1s -e IN_CREATE,IN_DELETE,IN_CLOSE_WRITE \
        "$tree" >"$out" 2>"$err" &
    pid=$!; PIDS+=("$pid")
    wait_for 300 grep -q "ready" "$err" || die "the watcher was not ready: $(cat "$err")"
    t0=$(cpu_ticks "$pid")
    sleep "$SECONDS_MEASURED"
    t1=$(cpu_ticks "$pid")
    local reported; reported=$(wc -l <"$out")
    stop_pid "$pid"
    (( reported == 0 )) || die "an idle tree was reported changed ($reported lines)"
    share $((t1 - t0))
    rm -f "$err" "$out"
}

# find_share TREE: `find` over the tree once a second for the window, its CPU share.
find_share() {
    local tree=$1 before after me=$BASHPID
    # Fields 16 and 17: the CPU of the children this (sub)shell waited for.
    before=$(awk '{print $16 + $17}' "/proc/$me/stat")
    for _ in $(seq "$SECONDS_MEASURED"); do
        local started; started=$(now_us)
        find "$tree" -printf '%s %T@\n' >/dev/null
        local left=$(( 1000000 - ($(now_us) - started) ))
        (( left > 0 )) && sleep "$(awk -v us="$left" 'BEGIN { printf "%.3f", us / 1e6 }')"
    done
    after=$(awk '{print $16 + $17}' "/proc/$me/stat")
    share $((after - before))
}

printf '| tree (%d files, polled every 1s) | inotifier --backend poll | find, once a second | ratio |\n' "$FILES"
printf '| --- | --- | --- | --- |\n'
for where in tmpfs fuse; do
    tree=$MNT/tree; [[ $where == fuse ]] && tree=$FUSE
    ours=$(poller_share "$tree")
    peer=$(find_share "$tree")
    printf '| %s | %s | %s | %s |\n' "$where" "$ours" "$peer" "$(ratio "${ours%\%}" "${peer%\%}")"
done
