"""The daemon through manage.py, as users run it: real processes, real inotify, real files.
Every process a test starts is ended by its pid (see conftest.Project.end_everything)."""

import os
import re
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import MANAGE, inotify_limit, pid_alive, wait_for
from inotifier import _native

RECORDER = "recorder.record.RecordingProcessor"
SIGNALER = "inotifier.event_processors.AllEventsSignaler"
GATE = "recorder.record.Gate"


def running_pid(project):
    report = _native.status(str(project.pid_file))
    return report["running"] and report["pid"]


def test_foreground_daemon_hands_events_to_a_python_processor(project):
    project.watches = [
        [str(project.watched), "IN_CLOSE_WRITE|IN_CREATE", RECORDER, {"options": {"label": "up"}}]
    ]
    process = project.popen("inotifier_start", "--foreground")
    pid = wait_for(project.watching, what="the daemon to be watching")
    assert pid == process.pid

    (project.watched / "report.csv").write_text("a,b\n")
    events = wait_for(
        lambda: [e for e in project.events() if e["maskname"] == "IN_CLOSE_WRITE"],
        what="IN_CLOSE_WRITE of report.csv",
    )
    assert events[0]["pathname"] == str(project.watched / "report.csv")
    assert events[0]["label"] == "up"
    assert [e["maskname"] for e in project.events()][:1] == ["IN_CREATE"]

    os.kill(process.pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"Adding watch on {project.watched}, processed by {RECORDER}" in stdout
    assert not project.pid_file.exists() or not running_pid(project)


def test_non_utf8_names_reach_the_processor_losslessly(project):
    project.watches = [[str(project.watched), "IN_CREATE", RECORDER]]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to start")
    raw = os.fsencode(str(project.watched)) + b"/caf\xe9"
    with open(raw, "wb"):
        pass
    event = wait_for(lambda: project.events(), what="IN_CREATE")[0]
    assert os.fsencode(event["name"]) == b"caf\xe9"
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_events_that_queue_up_reach_python_in_batches(project):
    # One worker: every event waits behind the gate's first one, then all go in a few calls.
    project.extra_env["INOTIFIER_TEST_WORKERS"] = "1"
    project.watches = [[str(project.watched), "IN_CREATE", GATE]]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to start")
    count = 300
    for index in range(count):
        (project.watched / f"f{index:03}").touch()
    wait_for(
        lambda: _native.status(str(project.pid_file)).get("events_seen", 0) >= count,
        what="every event to be queued behind the gate",
    )
    (project.output / "release").touch()
    wait_for(lambda: len(project.events()) >= count, what="every event to be processed")
    assert sorted(event["name"] for event in project.events()) == [
        f"f{index:03}" for index in range(count)
    ]
    # The status file is rewritten every second.
    status = wait_for(
        lambda: (report := _native.status(str(project.pid_file)))["delivered"] >= count and report,
        what="the status to count the deliveries",
    )
    assert status["delivered"] == count
    # The queue holds 1024 events and a call takes up to half of it: the held call, then
    # what queued behind it in one or two calls; one call per event would make 300.
    assert status["batches"] <= 4, status
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_start_status_stop_in_the_background_with_signals(project):
    project.watches = [[str(project.watched), "IN_CREATE|IN_CLOSE_WRITE", SIGNALER]]
    started = project.start()
    assert started.returncode == 0, started.stderr
    assert f"Adding watch on {project.watched}, processed by {SIGNALER}" in started.stdout
    pid = int(re.search(r"inotifier started: pid (\d+)", started.stdout).group(1))
    assert running_pid(project) == pid

    status = project.manage("inotifier_status")
    assert status.returncode == 0
    assert f"pid:            {pid}" in status.stdout

    second = project.manage("inotifier_start")
    assert second.returncode == 1
    assert f"already running with pid {pid}" in second.stderr

    (project.watched / "photo.jpg").write_bytes(b"\xff\xd8")
    received = wait_for(
        lambda: (
            {s["signal"] for s in project.signals()} >= {"IN_CREATE", "IN_CLOSE_WRITE"}
            and project.signals()
        ),
        what="in_create and in_close_write",
    )
    assert {s["sender"] for s in received} == {"AllEventsSignaler"}
    assert {s["pathname"] for s in received} == {str(project.watched / "photo.jpg")}

    stopped = project.manage("inotifier_stop", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stderr
    assert f"inotifier (pid {pid}) stopped" in stopped.stdout
    assert not pid_alive(pid)

    status = project.manage("inotifier_status")
    assert status.returncode == 3
    assert "not running" in status.stderr
    again = project.manage("inotifier_stop")
    assert again.returncode == 3
    assert "not running" in again.stderr


def test_stop_never_signals_a_process_merely_named_in_the_pid_file(project):
    # A stale pid file naming a live process that is not the daemon (this test's own).
    project.pid_file.write_text(f"{os.getpid()}\n")
    stopped = project.manage("inotifier_stop", "--timeout", "1")
    assert stopped.returncode == 3
    assert f"names pid {os.getpid()}" in stopped.stderr


def test_start_reports_a_daemon_that_cannot_come_up(project):
    # The settings pass the checks, but the daemon refuses a pid file in a directory others
    # can write to (they could replace it): the failure happens after the fork and must still
    # reach the exit status and the message.
    project.watches = [[str(project.watched), "IN_CREATE", SIGNALER]]
    os.chmod(project.path, 0o777)
    started = project.start()
    assert started.returncode == 1
    assert "the daemon did not start" in started.stderr
    assert str(project.pid_file) in started.stderr
    assert not running_pid(project)


def test_create_via_chunks_signals_the_renamed_part_file(project):
    project.watches = [
        [
            str(project.watched),
            "IN_CREATE|IN_MOVED_TO",
            "inotifier.event_processors.CreateViaChunksSignaler",
        ]
    ]
    started = project.start()
    assert started.returncode == 0, started.stderr
    part = project.watched / "movie.mp4.part"
    with open(part, "wb") as chunks:
        for _ in range(3):
            chunks.write(b"x" * 4096)
    os.rename(part, project.watched / "movie.mp4")
    (project.watched / "direct.txt").write_text("d")
    wait_for(lambda: len(project.signals()) >= 2, what="two in_create signals")
    # Stopped first, so that a signal for the .part would have been delivered by now.
    assert project.manage("inotifier_stop").returncode == 0
    # Different files are processed concurrently: their order is not part of the contract.
    received = {s["name"]: s for s in project.signals()}
    assert sorted(received) == ["direct.txt", "movie.mp4"]
    assert {s["signal"] for s in received.values()} == {"IN_CREATE"}
    assert received["movie.mp4"]["maskname"] == "IN_MOVED_TO"
    assert received["movie.mp4"]["src_pathname"] == str(part)
    assert received["direct.txt"]["maskname"] == "IN_CREATE"


def test_ready_signaler_says_when_a_file_is_complete(project):
    project.watches = [
        [
            str(project.watched),
            "IN_READY",
            "inotifier.event_processors.ReadySignaler",
            {"settle": 0.05},
        ]
    ]
    started = project.start()
    assert started.returncode == 0, started.stderr
    (project.watched / "done.bin").write_bytes(b"complete")
    received = wait_for(lambda: project.signals(), what="in_ready")
    assert [(s["signal"], s["name"], s["sender"]) for s in received] == [
        ("IN_READY", "done.bin", "ReadySignaler")
    ]
    assert project.manage("inotifier_stop").returncode == 0


def test_a_failing_processor_is_retried_and_logged_with_its_traceback(project):
    project.watches = [
        [
            str(project.watched),
            "IN_CREATE",
            "recorder.record.FailingOnce",
            {"retry": {"attempts": 3, "initial": 0.01, "max": 0.05}},
        ]
    ]
    started = project.start()
    assert started.returncode == 0, started.stderr
    (project.watched / "flaky").write_text("")
    wait_for(lambda: project.events(), what="the second attempt to succeed")
    assert project.manage("inotifier_stop").returncode == 0
    stderr = project.daemon_stderr()
    assert "Traceback" in stderr and "RuntimeError: first attempt fails" in stderr


def test_without_project_path_the_pid_file_is_in_a_private_runtime_directory(project, tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    project.use_project_path = False
    project.extra_env = {"XDG_RUNTIME_DIR": str(runtime)}
    project.watches = [[str(project.watched), "IN_CREATE", SIGNALER]]
    started = project.start()
    assert started.returncode == 0, started.stderr
    pid_files = list((runtime / "inotifier").glob("inotifier-*.pid"))
    assert len(pid_files) == 1
    assert f"pid file {pid_files[0]}" in started.stdout
    assert (runtime / "inotifier").stat().st_mode & 0o777 == 0o700

    status = project.manage("inotifier_status")
    assert status.returncode == 0 and str(pid_files[0]) in status.stdout
    assert project.manage("inotifier_stop").returncode == 0
    assert project.manage("inotifier_status").returncode == 3


def test_start_is_refused_in_a_process_that_already_runs_threads():
    # In this (pytest) process: the refusal comes before any fork or daemon.
    import threading

    import pytest
    from inotifier import daemon

    release = threading.Event()
    busy = threading.Thread(target=release.wait, name="busy-worker")
    busy.start()
    try:
        with pytest.raises(daemon.StartError, match="busy-worker"):
            daemon.start_background([])
        with pytest.raises(daemon.StartError, match="busy-worker"):
            daemon.run_foreground([])
    finally:
        release.set()
        busy.join()


def test_start_reports_a_processor_that_cannot_be_built(project):
    project.watches = [
        [str(project.watched), "IN_CREATE", SIGNALER, {"options": {"colour": "red"}}]
    ]
    started = project.start()
    assert started.returncode == 1
    assert "the daemon did not start" in started.stderr
    assert "AllEventsSignaler takes no options" in started.stderr
    assert not running_pid(project)


def test_a_runtime_directory_open_to_others_is_a_command_error(project, tmp_path):
    runtime = tmp_path / "runtime"
    (runtime / "inotifier").mkdir(parents=True)
    os.chmod(runtime / "inotifier", 0o777)
    project.use_project_path = False
    project.extra_env = {"XDG_RUNTIME_DIR": str(runtime)}
    project.watches = [[str(project.watched), "IN_CREATE", SIGNALER]]
    for command in ("inotifier_start", "inotifier_status", "inotifier_stop"):
        result = project.manage(command)
        assert result.returncode == 1, command
        assert "set PROJECT_PATH" in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.needs_root("lowers fs.inotify.max_queued_events")
def test_python_processors_get_the_queue_overflow_whatever_their_mask(project):
    # pyinotify handed process_IN_Q_OVERFLOW to every processor; native ones get it only when
    # they ask (the Rust fault tests check that side).
    project.watches = [[str(project.watched), "IN_CREATE", RECORDER]]
    # Until the daemon watches: a queue's size is fixed when its instance is made.
    with inotify_limit("max_queued_events", lambda _: 64):
        process = project.popen("inotifier_start", "--foreground")
        wait_for(project.watching, what="the daemon to be watching")
    # Stopped, the daemon reads nothing: 300 files overflow a queue of 64 for certain.
    os.kill(process.pid, signal.SIGSTOP)
    try:
        for index in range(300):
            (project.watched / f"f{index:03}").touch()
    finally:
        os.kill(process.pid, signal.SIGCONT)
    overflow = wait_for(
        lambda: [e for e in project.events() if e["maskname"] == "IN_Q_OVERFLOW"],
        timeout=30,
        what="IN_Q_OVERFLOW at the Python processor",
    )
    assert overflow[0]["pathname"] == str(project.watched)
    wait_for(
        lambda: (
            {e["name"] for e in project.events() if e["maskname"] == "IN_CREATE"}
            >= {f"f{index:03}" for index in range(300)}
        ),
        timeout=30,
        what="every file, through the rescan",
    )
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=30)
    assert process.returncode == 0


def test_start_keeps_none_of_the_callers_descriptors(project):
    # The caller reads the starter's output through a pipe on descriptor 5 too: the daemon must
    # not hold that pipe, or `cat` (and the caller) would wait for the daemon's end.
    project.watches = [[str(project.watched), "IN_CREATE", RECORDER]]
    manage = f"{shlex.quote(sys.executable)} {shlex.quote(str(MANAGE))}"
    try:
        started = subprocess.run(
            ["/bin/sh", "-c", f"{manage} inotifier_start 5>&1 | cat"],
            env=project.env(),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,  # asserted below
        )
    finally:
        # Ended at teardown whatever happened, found by its pid file.
        if pid := running_pid(project):
            project.started_pids.append(pid)
    assert started.returncode == 0, started.stderr
    assert re.search(r"inotifier started: pid (\d+)", started.stdout), started.stdout
    stopped = project.manage("inotifier_stop", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stderr
