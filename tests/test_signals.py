"""Stopping a foreground daemon (`manage.py inotifier_start --foreground`) with SIGTERM or
SIGINT: it exits 0 promptly when idle, and delivers what it had read before exiting."""

import os
import signal
import time

import pytest
from conftest import wait_for
from inotifier import _native

RECORDER = "recorder.record.RecordingProcessor"

# The daemon waits for signals with sigtimedwait, so it should exit within a few milliseconds
# of the signal when nothing is left to deliver; the issue promises "within a second plus the
# drain". The bound is 3 s rather than 1 s because the measured time also includes the
# Python interpreter's exit and the test's own wakeup, which a loaded CI machine can stretch;
# a daemon that missed the signal would hang until the 30 s timeout instead.
PROMPT_EXIT = 3.0


def daemon_state(project):
    report = _native.status(str(project.pid_file))
    return report["running"] and report


def start_foreground(project):
    process = project.popen("inotifier_start", "--foreground")
    # "running" is written once every watch is in place (the signals are blocked before the
    # pid file is even taken, so a signal after this is always the daemon's to handle).
    wait_for(
        lambda: (daemon_state(project) or {}).get("state") == "running",
        what="the daemon to report running",
    )
    return process


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_an_idle_daemon_exits_0_promptly(project, stop_signal):
    project.watches = [[str(project.watched), "IN_CREATE", RECORDER]]
    process = start_foreground(project)
    sent = time.monotonic()
    os.kill(process.pid, stop_signal)
    _, stderr = process.communicate(timeout=30)
    elapsed = time.monotonic() - sent
    assert process.returncode == 0, stderr
    assert elapsed < PROMPT_EXIT, f"exited {elapsed:.2f}s after {stop_signal.name}"
    assert f"{stop_signal.name} received: stopping" in stderr
    assert not daemon_state(project)


def test_events_read_before_sigterm_are_all_processed(project):
    delay = 0.6
    project.watches = [
        [
            str(project.watched),
            "IN_CREATE|IN_MODIFY|IN_ATTRIB|IN_CLOSE_WRITE",
            "recorder.record.Slow",
            {"options": {"delay": delay}},
        ]
    ]
    process = start_foreground(project)
    # One file, so its events wait in one worker's queue, processed one after the other.
    # Alternating kinds, because the kernel merges identical consecutive unread events.
    target = project.watched / "ledger.csv"
    target.write_text("a\n")  # IN_CREATE, IN_MODIFY, IN_CLOSE_WRITE
    os.chmod(target, 0o600)  # IN_ATTRIB
    with open(target, "a") as ledger:  # IN_MODIFY, IN_CLOSE_WRITE
        ledger.write("b\n")
    expected = [
        "IN_CREATE",
        "IN_MODIFY",
        "IN_CLOSE_WRITE",
        "IN_ATTRIB",
        "IN_MODIFY",
        "IN_CLOSE_WRITE",
    ]
    # events_seen counts what the daemon has read (its status file, refreshed every second).
    wait_for(
        lambda: (daemon_state(project) or {}).get("events_seen", 0) >= len(expected),
        what="the daemon to have read every event",
    )
    done_before_stop = [e for e in project.events() if e["stage"] == "done"]
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr

    # Processing takes len(expected) * delay = 3.6 s, of which at most ~1.5 s had passed:
    # most of it happened during the drain (INOTIFIER_DRAIN_TIMEOUT is 5 s in the test project).
    assert len(done_before_stop) < len(expected)
    done = [e["maskname"] for e in project.events() if e["stage"] == "done"]
    assert done == expected
    assert "the drain deadline" not in stderr
