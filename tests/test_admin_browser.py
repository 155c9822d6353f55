"""The admin's journal page in a real browser: Debian's chromium driven by Playwright, against
``manage.py runserver`` of ``adminproject.settings`` while the daemon runs. The dead letters are
real: an ``exec`` processor that fails while a flag file exists, with one attempt, so that each
file written dead-letters at once; the flag removed, a retried event is delivered. Retry and
purge go through the page; what they did is read back with ``_native.journal_summary``. The
page's screenshot is saved in the test's directory, and to docs/images/admin.png (the docs')
only with ``INOTIFIER_UPDATE_SCREENSHOT=1``, so that a test run changes no file of the tree."""

import os
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, Project, wait_for
from inotifier import _native
from services import required

CHROMIUM = "/usr/bin/chromium"
DOCS_SCREENSHOT = REPO / "docs" / "images" / "admin.png"
PASSWORD = "browser-test-password"
NAMES = ["invoice-1.pdf", "invoice-2.pdf", "invoice-3.pdf", "invoice-4.pdf", "scan.tiff"]


def need(missing):
    """Skips naming what is missing and how to get it, or fails under
    INOTIFIER_REQUIRE_SERVICES."""
    if required():
        pytest.fail(f"{missing}; INOTIFIER_REQUIRE_SERVICES is set")
    pytest.skip(missing)


def browser_or_skip():
    if not os.access(CHROMIUM, os.X_OK):
        need(
            f"{CHROMIUM} is not installed: apt-get install chromium (scripts/test.sh installs "
            "it when run as root)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("the Python package playwright is not installed (scripts/venv.sh installs it)")
    return sync_playwright


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url, server):
    if server.poll() is not None:
        pytest.fail(f"runserver exited with {server.returncode}:\n{server.communicate()[1]}")
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError):
        return False


@pytest.fixture
def short_project():
    """The ``project`` fixture with short paths: they show in the screenshot."""
    with tempfile.TemporaryDirectory(prefix="inotifier-", dir="/tmp") as root:
        project = Project(Path(root))
        try:
            yield project
        finally:
            project.end_everything()


def summary(journal):
    [row] = _native.journal_summary(journal)
    return row


def test_the_journal_page_in_a_browser_retries_and_purges_dead_letters(short_project, tmp_path):
    sync_playwright = browser_or_skip()
    project = short_project
    broken = tmp_path / "receiver-is-down"
    broken.touch()
    project.watches = [
        (
            str(project.watched),
            "IN_CLOSE_WRITE",
            "exec",
            {
                "options": {"argv": ["/bin/sh", "-c", 'test ! -e "$1"', "sh", str(broken)]},
                "retry": {"attempts": 1},
            },
        )
    ]
    project.extra_env.update(
        DJANGO_SETTINGS_MODULE="adminproject.settings",
        INOTIFIER_TEST_ADMIN_DB=str(tmp_path / "admin.sqlite3"),
        DJANGO_SUPERUSER_PASSWORD=PASSWORD,
    )
    journal = str(project.path / "inotifier.journal")
    for args in (
        ("migrate", "--noinput"),
        ("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"),
    ):
        result = project.manage(*args)
        assert result.returncode == 0, result.stderr
    started = project.start()
    assert started.returncode == 0, started.stderr
    pid = wait_for(project.watching, timeout=30, what="the daemon to run its watches")

    for name in NAMES:
        (project.watched / name).write_bytes(b"%PDF-1.7\n")
    wait_for(
        lambda: _native.journal_summary(journal) and summary(journal)["dead"] == len(NAMES),
        timeout=30,
        what=f"{len(NAMES)} dead letters",
    )
    key = summary(journal)["key"]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # --insecure: the admin's CSS and JavaScript served with DEBUG off, as the screenshot needs.
    server = project.popen("runserver", "--noreload", "--insecure", f"127.0.0.1:{port}")
    wait_for(lambda: answers(f"{base}/admin/login/", server), timeout=30, what="runserver")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{base}/admin/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#content-main")
            page.click("#content-main a[href='/admin/inotifier/journal/']")
            page.wait_for_selector("#inotifier-daemon")

            assert page.inner_text("#inotifier-daemon td.pid") == str(pid)
            assert page.inner_text("#inotifier-daemon td.state") == "running"
            assert page.inner_text("#inotifier-entries-title") == f"Dead letters of {key}"
            listed = page.locator("#result_list tbody tr")
            assert listed.count() == len(NAMES)
            paths = page.locator("#result_list td.pathname").all_inner_texts()
            assert paths == [str(project.watched / name) for name in NAMES]
            assert set(page.locator("#result_list td.attempts").all_inner_texts()) == {"1"}
            ids = [int(i) for i in page.locator("#result_list td.id").all_inner_texts()]

            # The receiver is back: retry the first two. They are delivered, and acknowledged.
            broken.unlink()
            for event_id in ids[:2]:
                page.check(f"#result_list tr[data-id='{event_id}'] input.action-select")
            assert page.inner_text("span.action-counter") == f"2 of {len(NAMES)} selected"
            page.select_option("select[name=action]", "retry")
            page.click("button[name=index]")
            page.wait_for_selector("ul.messagelist")
            assert page.inner_text("ul.messagelist li.success") == (
                f"2 dead letters of {key} made pending again: the daemon delivers them again "
                "within a second while it runs."
            )
            # What an operator sees after a retry: the screenshot of the docs.
            screenshot = (
                DOCS_SCREENSHOT
                if os.environ.get("INOTIFIER_UPDATE_SCREENSHOT") == "1"
                else tmp_path / "admin.png"
            )
            page.screenshot(path=str(screenshot), full_page=True)
            assert screenshot.stat().st_size > 10_000
            wait_for(
                lambda: (
                    summary(journal)["dead"] == len(NAMES) - 2
                    and summary(journal)["pending"] == 0
                    and summary(journal)["last_acked"] == ids[1]
                ),
                timeout=30,
                what="the retried events to be delivered",
            )
            page.reload()
            assert page.locator("#result_list tbody tr").count() == len(NAMES) - 2
            assert page.inner_text("#inotifier-processors td.dead") == str(len(NAMES) - 2)

            # Purge one, after the confirmation page.
            page.check(f"#result_list tr[data-id='{ids[4]}'] input.action-select")
            page.select_option("select[name=action]", "purge")
            page.click("button[name=index]")
            page.wait_for_selector("#purge-ids")
            assert page.locator("#purge-ids li").all_inner_texts() == [str(ids[4])]
            assert summary(journal)["dead"] == len(NAMES) - 2, "nothing purged yet"
            page.click("input[type=submit]")
            page.wait_for_selector("ul.messagelist")
            assert page.inner_text("ul.messagelist li.success") == (
                f"1 dead letter of {key} purged."
            )
            assert summary(journal)["dead"] == len(NAMES) - 3
            remaining = page.locator("#result_list td.id").all_inner_texts()
            assert [int(i) for i in remaining] == ids[2:4]
        finally:
            browser.close()
