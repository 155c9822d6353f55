"""kill -9 during a burst: what is lost, what is delivered twice, and how long until everything
owed is delivered.

Each round: `inotifier run` watches a fresh directory (IN_CLOSE_WRITE, the exec processor
appending `ID NAME` to a file through /bin/sh, the journal on this machine's disk) while a
writer creates BENCH_FILES files at a steady pace. When a quarter, half and three quarters of
them have been delivered, the daemon is killed with SIGKILL and started again at once (files
created meanwhile are found by catch-up). Once the writer is done, the round waits until every
file was delivered and the journal owes nothing.

Prints per round: files, deliveries, lost (never delivered), duplicates (deliveries beyond one
per file), and the time from the last start until nothing was owed; then the median over
rounds. Run through bench/kill9.sh, which builds the release binary.
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

INOTIFIER = os.environ["INOTIFIER_BIN"]
FILES = int(os.environ.get("BENCH_FILES", "20000"))
ROUNDS = int(os.environ.get("BENCH_REPEAT", "3"))
# The writer's pace: the burst lasts about FILES / RATE seconds, long enough for three kills.
RATE = int(os.environ.get("BENCH_RATE", "4000"))
DISK_DIR = os.environ.get("BENCH_DISK_DIR", "/var/tmp")
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "300"))

CONFIG = """[daemon]
pid_file = "{run}/inotifier.pid"
drain_timeout = "1s"

[journal]
path = "{run}/inotifier.journal"

[[watch]]
name = "burst"
path = "{watched}"
events = "IN_CLOSE_WRITE"
processor = "exec"
[watch.options]
argv = ["/bin/sh", "-c", "printf '%s %s\\n' \\"$1\\" \\"$2\\" >> \\"$0\\"", "{out}", "{{id}}", "{{name}}"]
"""


def wait(condition, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"kill9: timed out waiting for {what}")
        time.sleep(0.01)


def delivered(out):
    try:
        with open(out) as lines:
            return [line.split(" ", 1)[1].rstrip("\n") for line in lines if " " in line]
    except FileNotFoundError:
        return []


def pending(config):
    summary = subprocess.run(
        [INOTIFIER, "journal", "-c", config, "summary"],
        capture_output=True,
        text=True,
        check=False,  # a journal being written may be busy for a moment: asked again
    )
    if summary.returncode != 0:
        return None
    return sum(int(line.split()[1]) for line in summary.stdout.splitlines()[1:] if line.split())


def start(config, log):
    daemon = subprocess.Popen(
        [INOTIFIER, "run", "-c", config],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    return daemon


def ready(log_path):
    return b"ready: " in log_path.read_bytes()


def one_round(base):
    run_dir, watched = base / "run", base / "watched"
    run_dir.mkdir(mode=0o700)
    watched.mkdir()
    out = base / "delivered.txt"
    config = base / "inotifier.toml"
    config.write_text(CONFIG.format(run=run_dir, watched=watched, out=out))
    log = open(base / "run.log", "ab")
    daemon = start(config, log)
    wait(lambda: ready(base / "run.log"), "the first start")

    def write():
        started = time.monotonic()
        for index in range(FILES):
            (watched / f"f{index:06}").write_bytes(b"x")
            ahead = index / RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    writer = threading.Thread(target=write)
    writer.start()
    for fraction in (0.25, 0.5, 0.75):
        wait(lambda f=fraction: len(set(delivered(out))) >= f * FILES, f"{fraction:.0%} delivered")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        # The pid file's lock went with the process: the next start takes it over.
        daemon = start(config, log)
        last_start = time.monotonic()
    writer.join()

    def all_owed_delivered():
        return len(set(delivered(out))) >= FILES and pending(config) == 0

    wait(all_owed_delivered, "everything owed to be delivered")
    owed_time = time.monotonic() - last_start
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)
    log.close()
    names = delivered(out)
    unique = set(names)
    return {
        "files": FILES,
        "deliveries": len(names),
        "lost": FILES - len(unique & {f"f{index:06}" for index in range(FILES)}),
        "duplicates": len(names) - len(unique),
        "owed_s": owed_time,
    }


def main():
    results = []
    for number in range(1, ROUNDS + 1):
        with tempfile.TemporaryDirectory(dir=DISK_DIR, prefix="inotifier-kill9-") as base:
            result = one_round(Path(base))
        results.append(result)
        print(
            f"round {number}: {result['files']} files, {result['deliveries']} deliveries, "
            f"lost {result['lost']}, duplicates {result['duplicates']}, everything owed "
            f"delivered {result['owed_s']:.1f} s after the last start",
            flush=True,
        )
    print(
        f"median of {ROUNDS}: lost {statistics.median(r['lost'] for r in results):g}, "
        f"duplicates {statistics.median(r['duplicates'] for r in results):g} "
        f"(max {max(r['duplicates'] for r in results)}), everything owed delivered "
        f"{statistics.median(r['owed_s'] for r in results):.1f} s after the last start"
    )


if __name__ == "__main__":
    main()
