"""The README's test command, ``./scripts/test.sh``, as a user other than root: its first step
runs it again through sudo when there is a sudo, and otherwise goes on without root, saying that
the tests that need it are skipped.

Only that step is exercised, by a real unprivileged user (nobody) in a copy of scripts/ (the
checkout may be where nobody cannot go, such as under /root), with a PATH holding only the tools
that step uses: so that a sudo of this machine is not found unless the test puts its stand-in
there, and no toolchain either. Without one, the script stops at the next step, the toolchain
check, which is how a test can see it went on without running the whole suite a second time
(nobody has no toolchain of its own, and root's, under /root, is closed to it). That the tests
needing root skip themselves is checked by the tests themselves (the ``needs_root`` marker,
privileges.rs for the Rust ones)."""

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import REPO

USER = pwd.getpwnam("nobody")
# What the script runs before its toolchain check: the interpreter its #! line finds on PATH,
# and the two commands of its first step.
TOOLS = ("bash", "dirname", "id")


class Sandbox:
    """A directory nobody can use: ``repo/scripts`` copied from this tree, ``bin`` the only
    directory on PATH, and ``record``, where the stand-in sudo writes its arguments."""

    def __init__(self, root):
        self.root = root
        self.repo = root / "repo"
        self.bin = root / "bin"
        self.home = root / "home"
        self.record = root / "record" / "sudo-argv"
        shutil.copytree(REPO / "scripts", self.repo / "scripts")
        self.bin.mkdir()
        for tool in TOOLS:
            (self.bin / tool).symlink_to(shutil.which(tool))
        for writable in (self.home, self.record.parent):
            writable.mkdir()
            os.chown(writable, USER.pw_uid, USER.pw_gid)

    def add_sudo(self):
        """A stand-in sudo that records its arguments (NUL-separated) and succeeds, as the real
        one would after the re-executed script passed."""
        sudo = self.bin / "sudo"
        sudo.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > '{self.record}'\n")
        sudo.chmod(0o755)

    def sudo_argv(self):
        if not self.record.exists():
            return None
        return self.record.read_bytes().decode().split("\0")[:-1]

    def run_test_command(self, **env):
        """``./scripts/test.sh`` as the README writes it, run by nobody from the copy's root."""
        return subprocess.run(
            ["./scripts/test.sh"],
            cwd=self.repo,
            env={"PATH": str(self.bin), "HOME": str(self.home), **env},
            user=USER.pw_uid,
            group=USER.pw_gid,
            extra_groups=[],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # the tests assert on the exit status
        )


@pytest.fixture
def sandbox():
    root = Path(tempfile.mkdtemp(prefix="inotifier-scripts-"))
    root.chmod(0o755)
    try:
        yield Sandbox(root)
    finally:
        shutil.rmtree(root)


@pytest.mark.needs_root("runs scripts/test.sh as the user nobody")
def test_a_user_with_sudo_runs_the_script_again_through_it(sandbox):
    sandbox.add_sudo()
    result = sandbox.run_test_command(
        INOTIFIER_REQUIRE_SERVICES="1", INOTIFIER_DJANGO6_PYTHON="/opt/python3.12/bin/python3"
    )
    assert result.returncode == 0, result.stderr
    assert "some tests need root (they lower /proc/sys/fs/inotify limits" in result.stderr
    assert "running again as root through sudo" in result.stderr
    # The whole script again, by its absolute path, with what the tests read and the PATH that
    # found cargo passed through env, since sudo resets the environment.
    assert sandbox.sudo_argv() == [
        "-H",
        "env",
        f"PATH={sandbox.bin}",
        "INOTIFIER_REQUIRE_SERVICES=1",
        "INOTIFIER_DJANGO6_PYTHON=/opt/python3.12/bin/python3",
        str(sandbox.repo / "scripts" / "test.sh"),
    ]
    assert "cargo not found" not in result.stderr


@pytest.mark.needs_root("runs scripts/test.sh as the user nobody")
@pytest.mark.parametrize("sudo", ["absent", "declined with INOTIFIER_TEST_WITHOUT_SUDO=1"])
def test_a_user_without_sudo_goes_on_with_the_root_only_tests_skipped(sandbox, sudo):
    env = {}
    if sudo != "absent":
        sandbox.add_sudo()
        env["INOTIFIER_TEST_WITHOUT_SUDO"] = "1"
    result = sandbox.run_test_command(**env)
    assert sandbox.sudo_argv() is None, "sudo was run"
    notice, _, after = result.stderr.partition("\n")
    assert notice.startswith("scripts/test.sh: not root, and "), result.stderr
    assert "the tests that need root (they lower /proc/sys/fs/inotify limits" in notice
    assert "are skipped, each naming why, and listed at the end" in notice
    # The next step, which nobody's missing toolchain stops.
    assert after.startswith("cargo not found"), result.stderr
    assert result.returncode == 1


def test_ci_runs_exactly_the_readmes_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = readme.split("```sh\n")[1:]
    commands = [block.split("\n```")[0] for block in blocks if "scripts/test.sh" in block]
    assert commands == ["./scripts/test.sh"]
    ci = (REPO / ".ci/run").read_text().rstrip("\n").splitlines()
    assert ci[-1] == f"exec {commands[0]}"
    assert os.access(REPO / "scripts/test.sh", os.X_OK)
