"""The management commands as a deployment uses them: the checks on a machine that lacks the
watched paths (a container build), and the exit statuses as ``CommandError``."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

SIGNALER = "inotifier.event_processors.AllEventsSignaler"


class CountingEntries:
    """``INOTIFIER_WATCH_PATHS`` that counts how often the settings are read."""

    def __init__(self, entries):
        self.entries = entries
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        return iter(self.entries)


def test_check_passes_with_warnings_where_the_watched_path_is_missing(project):
    missing = project.watched / "not-mounted-here"
    project.watches = [[str(missing), "IN_CLOSE_WRITE", SIGNALER]]
    checked = project.manage("check")
    assert checked.returncode == 0, checked.stderr
    assert "inotifier.W001" in checked.stderr
    assert str(missing) in checked.stderr
    # migrate (which needs a database, which this project has not) is run by
    # test_production.py.

    started = project.start()
    assert started.returncode == 1
    assert "the daemon cannot start on this machine" in started.stderr
    assert f"inotifier.W001: INOTIFIER_WATCH_PATHS[0]: the path {missing}" in started.stderr
    assert "inotifier started" not in started.stdout
    assert not project.pid_file.exists()

    missing.mkdir()
    started = project.start()
    assert started.returncode == 0, started.stderr
    assert project.manage("inotifier_stop").returncode == 0


def test_start_reads_the_settings_once_and_refuses_on_a_warning(settings, tmp_path):
    entries = CountingEntries([(str(tmp_path / "missing"), "IN_CREATE", SIGNALER)])
    settings.INOTIFIER_WATCH_PATHS = entries
    settings.PROJECT_PATH = str(tmp_path)
    with pytest.raises(CommandError, match=r"inotifier\.W001") as refused:
        call_command("inotifier_start")
    assert refused.value.returncode == 1
    # The checks reported the same inspection the start acted on.
    assert entries.reads == 1


def test_status_and_stop_of_a_stopped_daemon_raise_command_error_with_status_3(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    for command in ("inotifier_status", "inotifier_stop"):
        with pytest.raises(CommandError, match="inotifier is not running") as stopped:
            call_command(command)
        assert stopped.value.returncode == 3


def test_a_refused_purge_is_a_usage_error_with_status_2(settings, tmp_path):
    settings.PROJECT_PATH = str(tmp_path)
    with pytest.raises(CommandError, match="--all") as refused:
        call_command("inotifier_journal", "purge", "--pending")
    assert refused.value.returncode == 2
