"""The Django app on a filesystem where inotify is deaf: a FUSE mount (bindfs) changed
underneath it, as another NFS client changes an NFS mount. The watch's default backend
(``auto``) polls there, and a Python processor gets the other host's changes."""

import json
import shutil
import subprocess

import pytest
from conftest import wait_for
from services import required

RECORDER = "recorder.record.RecordingProcessor"


@pytest.fixture
def fuse_mount(project, tmp_path):
    """``project.watched`` as a bindfs view of a source directory; unmounted at teardown."""
    if shutil.which("bindfs") is None:
        reason = "bindfs is not installed (apt-get install bindfs; scripts/test.sh does as root)"
        if required():
            pytest.fail(f"{reason}; INOTIFIER_REQUIRE_SERVICES is set")
        pytest.skip(reason)
    source = tmp_path / "source"
    source.mkdir()
    subprocess.run(["bindfs", str(source), str(project.watched)], check=True)
    try:
        yield source
    finally:
        # This teardown runs before the project's: the daemon is ended here, by its pid, so
        # that it does not hold the mount.
        project.end_everything()
        subprocess.run(["fusermount", "-u", str(project.watched)], check=False)


@pytest.mark.needs_root("mounts a FUSE filesystem (bindfs)")
def test_a_python_processor_gets_what_another_host_changed_on_a_fuse_mount(project, fuse_mount):
    project.watches = [
        [
            str(project.watched),
            "IN_CREATE|IN_CLOSE_WRITE|IN_DELETE|IN_MOVED_TO",
            RECORDER,
            {"recursive": True, "poll_interval": 0.2},
        ]
    ]
    process = project.popen("inotifier_start", "--foreground")
    wait_for(project.watching, what="the daemon to be watching")

    (fuse_mount / "report.csv").write_text("a,b\n")
    (fuse_mount / "sub").mkdir()
    (fuse_mount / "sub" / "inner.csv").write_text("c,d\n")

    def closed():
        names = {e["pathname"] for e in project.events() if e["maskname"] == "IN_CLOSE_WRITE"}
        wanted = {str(project.watched / "report.csv"), str(project.watched / "sub/inner.csv")}
        return wanted <= names

    wait_for(closed, timeout=20, what="the FUSE source's files to reach the processor")
    (fuse_mount / "report.csv").rename(fuse_mount / "renamed.csv")
    moved = wait_for(
        lambda: [e for e in project.events() if e["maskname"] == "IN_MOVED_TO"],
        timeout=20,
        what="the rename",
    )
    assert moved[0]["pathname"] == str(project.watched / "renamed.csv")
    assert moved[0]["src_pathname"] == str(project.watched / "report.csv")

    status = project.manage("inotifier_status", "--json")
    assert status.returncode == 0, status.stderr
    (watch,) = json.loads(status.stdout)["watches"]
    assert watch["backend"] == "poll"
    process.terminate()
    process.communicate(timeout=30)
