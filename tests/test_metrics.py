"""The daemon's metrics, scraped from ``/metrics`` over HTTP and read with Prometheus's own
parser (``prometheus_client``), after known workloads: files delivered, a processor that fails
for good, a kernel queue overflow. And ``status --json``, the same figures as one document, for
the binary's daemon and Django's."""

import json
import os
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest
from conftest import inotify_limit, read_jsonl, wait_for
from prometheus_client.parser import text_string_to_metric_families

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def scrape(address):
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def status_json(binary, config):
    result = subprocess.run(
        [str(binary), "status", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, json.loads(result.stdout)


def metrics_address(binary, config):
    code, document = status_json(binary, config)
    assert code == 0, document
    return document["metrics"]


def config_text(tmp_path, watches, daemon=""):
    return (
        f'{daemon}\n[metrics]\nlisten = "127.0.0.1:0"\n'
        f'[journal]\npath = "{tmp_path / "inotifier.journal"}"\n{watches}'
    )


def test_a_scrape_counts_deliveries_dead_letters_and_the_backlog(toml_daemon, tmp_path):
    files, failing = tmp_path / "files", tmp_path / "failing"
    files.mkdir()
    failing.mkdir()
    out = tmp_path / "events.jsonl"
    toml_daemon.write(
        config_text(
            tmp_path,
            f"""
[[watch]]
name = "files"
path = "{files}"
events = ["IN_CLOSE_WRITE"]
processor = "jsonl"
options = {{ path = "{out}" }}

[[watch]]
name = "failing"
path = "{failing}"
events = ["IN_CLOSE_WRITE"]
processor = "exec"
options = {{ argv = ["/bin/false"] }}
retry = {{ attempts = 2, initial = "10ms" }}
backend = "poll"
poll_interval = "200ms"
""",
        )
    )
    toml_daemon.start()
    address = metrics_address(toml_daemon.binary, toml_daemon.config)
    for index in range(20):
        (files / f"f{index:02}.txt").write_text("x")
    (failing / "refused.txt").write_text("x")
    wait_for(lambda: len(read_jsonl(out)) == 20, timeout=30, what="20 files delivered")

    def settled():
        samples = scrape(address)
        done = (
            value(samples, "inotifier_journal_pending", watch="files") == 0
            and value(samples, "inotifier_dead_letters", watch="failing") == 1
            and value(samples, "inotifier_journal_pending", watch="failing") == 0
        )
        return samples if done else None

    samples = wait_for(settled, timeout=30, what="the backlog to settle")
    assert value(samples, "inotifier_events_total", watch="files", origin="kernel") == 20
    assert value(samples, "inotifier_events_total", watch="files", origin="rescan") == 0
    assert value(samples, "inotifier_deliveries_total", watch="files", outcome="delivered") == 20
    assert value(samples, "inotifier_deliveries_total", watch="files", outcome="dead") == 0
    assert value(samples, "inotifier_deliveries_total", watch="failing", outcome="delivered") == 0
    assert value(samples, "inotifier_deliveries_total", watch="failing", outcome="retried") == 1
    assert value(samples, "inotifier_deliveries_total", watch="failing", outcome="dead") == 1
    assert value(samples, "inotifier_journal_oldest_pending_age_seconds", watch="files") == 0
    calls = value(samples, "inotifier_delivery_duration_seconds_count", watch="files")
    assert 1 <= calls <= 20
    assert value(samples, "inotifier_kernel_watches") == 2
    limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    assert value(samples, "inotifier_kernel_watches_limit") == limit
    assert value(samples, "inotifier_ready") == 1
    assert value(samples, "inotifier_queue_overflows_total", watch="files") == 0
    assert any(name == "inotifier_build_info" for name, _ in samples)
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "process_open_fds") > 0

    # status --json gives the same figures, per watch and in total (its status file is
    # rewritten every second).
    def reported():
        code, document = status_json(toml_daemon.binary, toml_daemon.config)
        assert code == 0
        totals = document["totals"]
        return document if (totals["delivered"], totals["failed"]) == (20, 1) else None

    document = wait_for(reported, what="the status file to have the deliveries")
    assert document["format"] == 1
    assert document["running"] is True
    assert document["state"] == "running"
    assert document["kernel_watches"] == 2
    assert document["kernel_watches_limit"] == limit
    by_key = {watch["key"]: watch for watch in document["watches"]}
    assert by_key["files"]["events"]["kernel"] == 20
    assert by_key["files"]["delivered"] == 20
    assert by_key["files"]["pending"] == 0
    assert by_key["files"]["processor"] == "jsonl"
    assert by_key["files"]["backend"] == "inotify"
    assert by_key["failing"]["backend"] == "poll"
    assert by_key["failing"]["dead_lettered"] == 1
    assert by_key["failing"]["dead"] == 1
    assert document["totals"]["delivered"] == 20
    assert document["totals"]["dead"] == 1
    assert document["totals"]["pending"] == 0

    # Every series the example dashboard and alert rules use is one the daemon serves.
    served = {name for name, _ in samples}
    for example in ("grafana-dashboard.json", "prometheus-alerts.yml"):
        used = set(re.findall(r"\b(?:inotifier|process)_[a-z_]+", (EXAMPLES / example).read_text()))
        assert used, example
        assert used <= served, (example, used - served)

    assert toml_daemon.stop() == 0
    code, document = status_json(toml_daemon.binary, toml_daemon.config)
    assert code == 3
    assert document["running"] is False


@pytest.mark.needs_root("lowers fs.inotify.max_queued_events")
def test_an_overflow_is_counted_with_its_rescan(toml_daemon, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    out = tmp_path / "events.jsonl"
    toml_daemon.write(
        config_text(
            tmp_path,
            f"""
[[watch]]
name = "burst"
path = "{watched}"
events = ["IN_CREATE"]
processor = "jsonl"
options = {{ path = "{out}" }}
""",
        )
    )
    # A queue's size is fixed when its instance is made: lowered for the start only.
    with inotify_limit("max_queued_events", lambda _: 64):
        toml_daemon.start()
    address = metrics_address(toml_daemon.binary, toml_daemon.config)
    before = scrape(address)
    assert value(before, "inotifier_queue_overflows_total", watch="burst") == 0
    assert value(before, "inotifier_rescan_duration_seconds_count") == 0
    # Stopped, the daemon reads nothing: 300 files overflow a queue of 64 for certain.
    os.kill(toml_daemon.process.pid, signal.SIGSTOP)
    try:
        for index in range(300):
            (watched / f"f{index:03}").touch()
    finally:
        os.kill(toml_daemon.process.pid, signal.SIGCONT)
    wait_for(
        lambda: {event["name"] for event in read_jsonl(out)} >= {f"f{i:03}" for i in range(300)},
        timeout=30,
        what="every file, through the rescan",
    )
    samples = scrape(address)
    # At least one: SIGSTOP takes effect a moment after kill() returns, and a reader that was
    # still running may have seen the queue overflow once already. Each overflow has its rescan.
    overflows = value(samples, "inotifier_queue_overflows_total", watch="burst")
    assert overflows >= 1
    assert value(samples, "inotifier_rescans_total", watch="burst") == overflows
    assert value(samples, "inotifier_rescan_duration_seconds_count") == overflows
    assert value(samples, "inotifier_rescan_duration_seconds_sum") > 0
    found_by_rescan = value(samples, "inotifier_events_total", watch="burst", origin="rescan")
    from_kernel = value(samples, "inotifier_events_total", watch="burst", origin="kernel")
    assert found_by_rescan > 0
    assert found_by_rescan + from_kernel >= 300

    def reported():
        _, document = status_json(toml_daemon.binary, toml_daemon.config)
        (watch,) = document["watches"]
        return watch if watch["events"]["rescan"] == found_by_rescan else None

    watch = wait_for(reported, what="the status file to have the rescan")
    assert (watch["overflows"], watch["rescans"]) == (overflows, overflows)
    assert watch["events"]["rescan"] == found_by_rescan


def test_a_bad_listen_address_is_a_config_error(inotifier_bin, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    config = tmp_path / "inotifier.toml"
    config.write_text(
        f'[metrics]\nlisten = "localhost"\n'
        f'[[watch]]\npath = "{watched}"\nevents = ["IN_CREATE"]\nprocessor = "log"\n'
    )
    checked = subprocess.run(
        [str(inotifier_bin), "check", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode != 0
    assert 'listen "localhost" in [metrics] is not an address and port' in checked.stderr
    assert "127.0.0.1:9464" in checked.stderr


def test_a_port_in_use_is_a_start_error_that_names_it(inotifier_bin, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "inotifier.toml"
        config.write_text(
            f'[daemon]\npid_file = "{tmp_path / "inotifier.pid"}"\n'
            f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
            f'[[watch]]\npath = "{watched}"\nevents = ["IN_CREATE"]\nprocessor = "log"\n'
        )
        ran = subprocess.run(
            [str(inotifier_bin), "run", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert ran.returncode != 0
    assert f"metrics: cannot listen on 127.0.0.1:{port}" in ran.stderr
    assert "[metrics] listen" in ran.stderr
    assert not (tmp_path / "inotifier.pid").exists()


def test_the_django_daemon_serves_metrics_and_its_status_as_json(project):
    project.watches = [
        [str(project.watched), "IN_CLOSE_WRITE", "recorder.record.RecordingProcessor"]
    ]
    project.extra_env["INOTIFIER_TEST_METRICS"] = json.dumps({"listen": "127.0.0.1:0"})
    started = project.start()
    assert started.returncode == 0, started.stderr
    for name in ("a.txt", "b.txt", "c.txt"):
        (project.watched / name).write_text(name)
    wait_for(lambda: len(project.events()) == 3, what="three events at the processor")
    status = project.manage("inotifier_status", "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    (watch,) = document["watches"]
    assert watch["processor"] == "recorder.record.RecordingProcessor"
    key = watch["key"]
    samples = wait_for(
        lambda: (
            (found := scrape(document["metrics"]))
            and value(found, "inotifier_journal_pending", watch=key) == 0
            and found
        ),
        what="the deliveries acknowledged",
    )
    assert value(samples, "inotifier_deliveries_total", watch=key, outcome="delivered") == 3
    assert project.manage("inotifier_stop").returncode == 0
    stopped = project.manage("inotifier_status", "--json")
    assert stopped.returncode == 3
    assert json.loads(stopped.stdout)["running"] is False


def test_e021_a_bad_metrics_setting(settings):
    from django.core import checks

    for bad in ({"listen": "9464"}, {"port": 9464}, "127.0.0.1:9464"):
        settings.INOTIFIER_METRICS = bad
        ids = [m.id for m in checks.run_checks(tags=["inotifier"])]
        assert ids == ["inotifier.E021"], bad
    settings.INOTIFIER_METRICS = {"listen": "[::1]:9464"}
    assert [m.id for m in checks.run_checks(tags=["inotifier"])] == []


def degradation(address):
    samples = scrape(address)
    return (
        value(samples, "inotifier_degraded"),
        value(samples, "inotifier_watched_roots_missing"),
        value(samples, "inotifier_unwatched_directories", reason="out_of_watches"),
    )


def test_a_watched_path_gone_and_back_shows_in_the_metrics(toml_daemon, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    toml_daemon.write(
        config_text(
            tmp_path,
            f'[[watch]]\npath = "{watched}"\nevents = ["IN_CREATE"]\nprocessor = "log"\n',
        )
    )
    toml_daemon.start()
    address = metrics_address(toml_daemon.binary, toml_daemon.config)
    assert degradation(address) == (0, 0, 0)
    watched.rename(tmp_path / "moved-away")
    wait_for(lambda: degradation(address) == (1, 1, 0), timeout=30, what="the root missing")
    _, document = status_json(toml_daemon.binary, toml_daemon.config)
    assert document["state"] == "degraded"
    assert any(str(watched) in problem for problem in document["problems"])
    (tmp_path / "moved-away").rename(watched)
    wait_for(lambda: degradation(address) == (0, 0, 0), timeout=30, what="the root back")


@pytest.mark.needs_root("lowers fs.inotify.max_user_watches")
def test_directories_left_unwatched_for_want_of_watches_show_in_the_metrics(toml_daemon, tmp_path):
    watched = tmp_path / "watched"
    watched.mkdir()
    toml_daemon.write(
        config_text(
            tmp_path,
            f'[[watch]]\npath = "{watched}"\nevents = ["IN_CREATE"]\nprocessor = "log"\n'
            "recursive = true\n",
        )
    )
    toml_daemon.start()
    address = metrics_address(toml_daemon.binary, toml_daemon.config)
    assert degradation(address) == (0, 0, 0)
    # No new watch for anyone while the limit is 1: the new directories stay unwatched, and
    # the daemon tries them again every second.
    with inotify_limit("max_user_watches", lambda _: 1):
        for index in range(5):
            (watched / f"d{index}").mkdir()
        wait_for(lambda: degradation(address) == (1, 0, 5), timeout=30, what="5 unwatched")
    wait_for(lambda: degradation(address) == (0, 0, 0), timeout=30, what="the gaps healed")
    assert value(scrape(address), "inotifier_kernel_watches") == 6


def test_events_held_up_show_as_pending_with_their_age_until_delivered(toml_daemon, tmp_path):
    import fcntl

    watched = tmp_path / "watched"
    watched.mkdir()
    gate = tmp_path / "gate"
    gate.touch()
    # Each delivery runs `flock GATE true`, which waits while this test holds the lock: what
    # the daemon reads stays pending in its journal, as behind a receiver that is down.
    toml_daemon.write(
        config_text(
            tmp_path,
            f"""
[[watch]]
name = "held"
path = "{watched}"
events = ["IN_CLOSE_WRITE"]
processor = "exec"
options = {{ argv = ["flock", "{gate}", "true"], timeout = "5m" }}
""",
        )
    )
    with open(gate) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        toml_daemon.start()
        address = metrics_address(toml_daemon.binary, toml_daemon.config)
        for index in range(5):
            (watched / f"f{index}").write_text("x")

        def backlog():
            samples = scrape(address)
            pending = value(samples, "inotifier_journal_pending", watch="held")
            age = value(samples, "inotifier_journal_oldest_pending_age_seconds", watch="held")
            return (pending, age) if pending == 5 and age >= 0.2 else None

        pending, age = wait_for(backlog, timeout=30, what="5 events pending, the oldest aging")
        assert (
            value(scrape(address), "inotifier_deliveries_total", watch="held", outcome="delivered")
            == 0
        )
        _, document = status_json(toml_daemon.binary, toml_daemon.config)
        (watch,) = document["watches"]
        assert watch["pending"] == 5
        assert watch["oldest_pending_age_seconds"] > 0
        assert document["totals"]["pending"] == 5
        fcntl.flock(held, fcntl.LOCK_UN)
    wait_for(
        lambda: (
            (samples := scrape(address))
            and value(samples, "inotifier_journal_pending", watch="held") == 0
            and value(samples, "inotifier_journal_oldest_pending_age_seconds", watch="held") == 0
            and value(samples, "inotifier_deliveries_total", watch="held", outcome="delivered") == 5
        ),
        timeout=30,
        what="the backlog delivered",
    )
