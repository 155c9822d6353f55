"""Does handing the daemon's log lines to Python logging slow delivery down? The Django daemon
(bench/djangoproject, ``manage.py inotifier_start --foreground``) with the native jsonl
processor delivers BENCH_EVENTS files' IN_CREATE, queued in the kernel while the daemon is
stopped (SIGSTOP) and drained once it is continued, in three setups:

  stderr          no LOGGING: the daemon writes its lines to stderr (the bridge is off)
  bridge-warning  LOGGING sends ``inotifier`` at WARNING to a file: the bridge is on, and the
                  daemon's DEBUG and INFO records (INOTIFIER_LOG_LEVEL=debug) are dropped on
                  the cached level, without the GIL
  bridge-debug    the same at DEBUG: every record goes through Python logging

Prints, per setup, the median events/s (from SIGCONT until the last line is written) and the
daemon's CPU time in that span, over BENCH_REPEAT runs in alternating order. No root needed:
BENCH_EVENTS stays under the kernel's default max_queued_events (16384).

    .venv/bin/python bench/logging_bridge.py     (after scripts/venv.sh; build the native
                                                  module --release for figures that count)
"""

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inotifier import _native

HERE = Path(__file__).resolve().parent
MANAGE = HERE / "djangoproject" / "manage.py"
EVENTS = int(os.environ.get("BENCH_EVENTS", "15000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
SETUPS = {"stderr": None, "bridge-warning": "WARNING", "bridge-debug": "DEBUG"}
TICKS = os.sysconf("SC_CLK_TCK")


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def lines(path):
    try:
        with open(path, "rb") as file:
            return file.read().count(b"\n")
    except FileNotFoundError:
        return 0


def run(setup, root):
    project, watched, count = root / "project", root / "watched", root / "events.jsonl"
    project.mkdir()
    watched.mkdir()
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="benchproject.settings",
        BENCH_PROJECT_PATH=str(project),
        BENCH_WATCH_DIR=str(watched),
        BENCH_COUNT_FILE=str(count),
        BENCH_PROCESSOR="jsonl",
        BENCH_LOG_LEVEL="debug",
    )
    if SETUPS[setup]:
        env["BENCH_LOGGING"] = SETUPS[setup]
    with open(project / "stderr", "wb") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, str(MANAGE), "inotifier_start", "--foreground"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        pid_file = str(project / "inotifier.pid")

        def running():
            if daemon.poll() is not None:
                raise SystemExit(f"{setup}: the daemon exited: {(project / 'stderr').read_text()}")
            report = _native.status(pid_file)
            return report["running"] and report.get("state") == "running"

        wait(running, 60, "the daemon to watch")
        os.kill(daemon.pid, signal.SIGSTOP)
        for index in range(EVENTS):
            (watched / f"f{index:06}").touch()
        cpu0 = cpu_ticks(daemon.pid)
        t0 = time.perf_counter()
        os.kill(daemon.pid, signal.SIGCONT)
        wait(lambda: lines(count) >= EVENTS, 120, f"{EVENTS} lines")
        elapsed = time.perf_counter() - t0
        cpu = (cpu_ticks(daemon.pid) - cpu0) * 1000 / TICKS
    finally:
        os.kill(daemon.pid, signal.SIGCONT)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    python_log = project / "python.log"
    records = python_log.read_text().count("\n") if python_log.exists() else 0
    return EVENTS / elapsed, cpu, records


def main():
    sys.path.insert(0, str(MANAGE.parent))
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    results = {setup: [] for setup in SETUPS}
    order = list(SETUPS)
    for round_ in range(REPEAT):
        for setup in order:
            root = Path(tempfile.mkdtemp(prefix="inotifier-logbench.", dir=base))
            try:
                rate, cpu, records = run(setup, root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            results[setup].append((rate, cpu, records))
            print(
                f"round {round_ + 1} {setup}: {rate:.0f} events/s, CPU {cpu:.0f} ms, "
                f"{records} Python log lines",
                file=sys.stderr,
            )
        order.reverse()
    print(f"{EVENTS} events, jsonl processor, INOTIFIER_LOG_LEVEL=debug, medians of {REPEAT}")
    print("| setup | events/s | vs stderr | CPU ms | Python log lines |")
    print("|---|---|---|---|---|")
    base_rate = statistics.median(r for r, _, _ in results["stderr"])
    for setup, runs in results.items():
        rate = statistics.median(r for r, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        records = statistics.median(n for _, _, n in runs)
        print(f"| {setup} | {rate:.0f} | {rate / base_rate:.2f}x | {cpu:.0f} | {records:.0f} |")


if __name__ == "__main__":
    main()
