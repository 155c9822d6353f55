"""The journal under the Django daemon (``manage.py inotifier_start``): a daemon killed with
SIGKILL redelivers what its Python processor had not finished, and files created while it was
stopped reach the processor at its next start. Real processes, real files, the journal at its
default place (``PROJECT_PATH/inotifier.journal``)."""

import os
import signal

from conftest import wait_for

SLOW = "recorder.record.Slow"
RECORDER = "recorder.record.RecordingProcessor"


def start(project):
    process = project.popen("inotifier_start", "--foreground")
    wait_for(lambda: project.watching() == process.pid, what="the daemon to start")
    return process


def stop(process):
    """SIGTERM, a clean exit; returns what the daemon logged (in the foreground, on stderr)."""
    os.kill(process.pid, signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    return stderr


def test_a_killed_daemon_redelivers_what_its_processor_had_not_finished(project):
    project.watches = [[str(project.watched), "IN_CREATE", SLOW, {"options": {"delay": 0.05}}]]
    process = start(project)
    names = [f"f{index:02}" for index in range(60)]
    for name in names:
        (project.watched / name).touch()

    def done():
        return [e for e in project.events() if e.get("stage") == "done"]

    wait_for(lambda: len(done()) >= 10, timeout=120, what="some files done")
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    at_kill = {e["name"] for e in done()}
    assert len(at_kill) < len(names), "all done before the kill: the processor is too fast"
    assert (project.path / "inotifier.journal").exists()

    process = start(project)
    try:
        wait_for(
            lambda: {e["name"] for e in done()} == set(names),
            timeout=120,
            what="every file done after the restart",
        )
    except BaseException:
        os.kill(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        missing = set(names) - {e["name"] for e in done()}
        print("MISSING", sorted(missing), "AT KILL", len(at_kill))
        print(stderr)
        raise
    log = stop(process)
    # A redelivery keeps the event's id, so a processor can tell a duplicate: one id per
    # file for its kernel event (the catch-up may also report a file, under an id of its own).
    for name in names:
        kernel_ids = {e["id"] for e in done() if e["name"] == name and e["origin"] == "kernel"}
        assert len(kernel_ids) <= 1, (name, kernel_ids)
    assert "pending since the last run redelivered" in log


def test_files_created_while_the_daemon_was_stopped_reach_the_processor(project):
    (project.watched / "existing").touch()
    project.watches = [[str(project.watched), "IN_CREATE|IN_DELETE", RECORDER]]
    process = start(project)
    stop(process)
    assert project.events() == [], "the first start reports what already exists"

    (project.watched / "made-while-stopped").touch()
    os.unlink(project.watched / "existing")
    process = start(project)
    wait_for(lambda: len(project.events()) >= 2, timeout=30, what="the two changes")
    stop(process)
    changes = sorted((e["maskname"], e["name"], e["origin"]) for e in project.events())
    assert changes == [
        ("IN_CREATE", "made-while-stopped", "catchup"),
        ("IN_DELETE", "existing", "catchup"),
    ]
