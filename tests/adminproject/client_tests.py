"""The admin's journal page through Django's test client, with ``adminproject.settings``
(tests/test_admin_client.py runs this file in a pytest of its own: the other tests' settings
have no database). The journals are real files: filled with ``_native.journal_import`` (what
``manage.py inotifier_journal import`` runs); what only a running daemon does to a journal
(dead-letter) is done with SQL on the documented schema (``deliveries.state`` 0 pending, 1
dead), as tests/test_journal_command.py does. What the page changed is read back through
``_native``."""

import json
import os
import re
import sqlite3
from urllib.parse import urlencode

import pytest
from conftest import wait_for
from django.contrib.auth.models import Permission, User
from django.test import Client
from inotifier import _native

KEY = "exec@/srv/in"
OTHER = "jsonl@/srv/other"
URL = "/admin/inotifier/journal/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def journal(settings, tmp_path):
    """The settings' journal path (``PROJECT_PATH/inotifier.journal``), not yet created."""
    settings.PROJECT_PATH = str(tmp_path)
    settings.INOTIFIER_JOURNAL = {}
    return str(tmp_path / "inotifier.journal")


def fill(journal, count, processor=KEY):
    """Imports ``count`` events for ``processor``; returns their ids."""
    source = os.path.join(os.path.dirname(journal), f"{processor.replace('/', '_')}.jsonl")
    with open(source, "w") as out:
        for n in range(count):
            line = {"mask": 8, "path": "/srv/in", "name": f"f{n}", "time": 1764077825.5 + n}
            out.write(json.dumps(line) + "\n")
    first, last = _native.journal_import(journal, source, processor)
    return list(range(first, last + 1))


def dead_letter(journal, ids, processor=KEY, attempts=1, error="exit status 1"):
    with sqlite3.connect(journal) as db:
        db.executemany(
            "UPDATE deliveries SET state = 1, attempts = ?, error = ? WHERE event = ? AND "
            "processor = (SELECT id FROM processors WHERE key = ?)",
            [(attempts, error, i, processor) for i in ids],
        )
    db.close()


def dead_ids(journal, processor=KEY):
    return [row["id"] for row in _native.journal_list(journal, processor, True, 10_000)]


def counts(journal):
    return {row["key"]: (row["pending"], row["dead"]) for row in _native.journal_summary(journal)}


def staff(*codenames):
    """A logged-in client of a staff user (not a superuser) with these inotifier permissions."""
    user = User.objects.create_user("operator", password="x", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="inotifier", codename__in=codenames)
    )
    client = Client()
    client.force_login(user)
    return client


def rows(response):
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)">', response.content.decode())]


def text(response):
    return response.content.decode()


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def page(client, **query):
    response = client.get(f"{URL}?{urlencode(query)}" if query else URL)
    assert response.status_code == 200
    return response


def test_anonymous_users_are_sent_to_the_login_page(journal):
    response = Client().get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}"


def test_staff_without_permission_get_403_and_no_inotifier_section(journal):
    client = staff()
    assert client.get(URL).status_code == 403
    index = client.get("/admin/")
    assert index.status_code == 200
    assert URL not in text(index)
    assert client.get("/admin/inotifier/").status_code == 404


def test_non_staff_users_are_sent_to_the_login_page(journal):
    user = User.objects.create_user("visitor", password="x")
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="inotifier"))
    client = Client()
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_view_permission_shows_dead_and_pending_events_a_page_at_a_time(journal):
    ids = fill(journal, 130)
    fill(journal, 2, processor=OTHER)
    dead_letter(journal, ids[:70], attempts=3, error="exit status 1\nsecond line")
    client = staff("view_journal")

    index = client.get("/admin/")
    assert f'<a href="{URL}">Journal</a>' in text(index)
    assert re.search(r'<a href="/admin/inotifier/"[^>]*>inotifier</a>', text(index))

    # The processor with dead letters, its dead letters first.
    first = page(client)
    assert first.context["selected"]["key"] == KEY and first.context["dead"]
    assert rows(first) == ids[:50]
    body = text(first)
    assert "Dead letters of exec@/srv/in" in body
    assert "/srv/in/f0" in body and "IN_CLOSE_WRITE" in body
    assert "exit status 1\nsecond line" in body
    assert "Nov. 25, 2025, 1:37 p.m." in body  # the event's time, 1764077825.5, in UTC
    assert "70 dead letters, 50 a page" in body
    # View only: no checkboxes, no actions.
    assert 'name="_selected_action"' not in body and 'name="action"' not in body
    # The daemon does not run: said so, with the pid file it looked at.
    assert "inotifier is not running (no pid file at" in body
    assert re.search(r'<td class="dead"><a href="[^"]+">70</a>', body)
    assert re.search(r'<td class="pending"><a href="[^"]+">60</a>', body)

    second = page(client, processor=KEY, state="dead", p=2)
    assert rows(second) == ids[50:70]
    # Past the last page: the last page, as the admin's lists do.
    assert rows(page(client, processor=KEY, state="dead", p=9)) == ids[50:70]

    pending = page(client, processor=KEY, state="pending", p=2)
    assert not pending.context["dead"]
    assert rows(pending) == ids[120:130]
    assert "Pending events of exec@/srv/in" in text(pending)

    other = page(client, processor=OTHER, state="pending")
    assert rows(other) == [131, 132]


def test_retry_needs_the_change_permission_and_makes_the_picked_pending(journal):
    ids = fill(journal, 5)
    dead_letter(journal, ids)
    form = {"action": "retry", "processor": KEY, "_selected_action": ["2", "4"], "p": "1"}

    viewer = staff("view_journal")
    assert viewer.post(URL, form).status_code == 403
    assert dead_ids(journal) == ids

    User.objects.get(username="operator").user_permissions.add(
        Permission.objects.get(codename="change_journal")
    )
    listed = page(viewer)
    assert 'value="retry"' in text(listed) and 'value="purge"' not in text(listed)
    response = viewer.post(URL, form, follow=True)
    back = urlencode({"processor": KEY, "state": "dead", "p": 1})
    assert response.redirect_chain[-1][0] == f"{URL}?{back}"
    assert messages_of(response) == [
        f"2 dead letters of {KEY} made pending again: the daemon delivers them again within a "
        "second while it runs."
    ]
    assert dead_ids(journal) == [1, 3, 5]
    assert counts(journal) == {KEY: (2, 3)}
    assert rows(response) == [1, 3, 5]

    # Retried already: nothing more to do, and said so.
    again = viewer.post(URL, form, follow=True)
    assert messages_of(again) == [
        f"0 dead letters of {KEY} made pending again: the daemon delivers them again within a "
        "second while it runs. 2 of the 2 selected were no longer dead letters (retried or "
        "purged meanwhile)."
    ]


def test_purge_needs_the_delete_permission_and_asks_first(journal):
    ids = fill(journal, 4)
    dead_letter(journal, ids)
    form = {"action": "purge", "processor": KEY, "_selected_action": ["1", "3"]}

    retrier = staff("view_journal", "change_journal")
    assert retrier.post(URL, form).status_code == 403
    assert dead_ids(journal) == ids

    user = User.objects.get(username="operator")
    user.user_permissions.add(Permission.objects.get(codename="delete_journal"))
    confirm = retrier.post(URL, form)
    assert confirm.status_code == 200
    assert "Purge 2 dead letters of <strong>exec@/srv/in</strong> for good?" in text(confirm)
    assert dead_ids(journal) == ids, "nothing purged before the confirmation"

    done = retrier.post(URL, {**form, "post": "yes"}, follow=True)
    assert messages_of(done) == [f"2 dead letters of {KEY} purged."]
    assert dead_ids(journal) == [2, 4]
    assert counts(journal) == {KEY: (0, 2)}

    # Delete without view: no page, so no purge either.
    user.user_permissions.set(Permission.objects.filter(codename="delete_journal"))
    assert retrier.post(URL, {**form, "post": "yes"}).status_code == 403


def test_actions_without_a_selection_or_an_action_change_nothing(journal):
    ids = fill(journal, 2)
    dead_letter(journal, ids)
    client = staff("view_journal", "change_journal", "delete_journal")
    nothing = client.post(URL, {"action": "retry", "processor": KEY}, follow=True)
    assert messages_of(nothing) == [
        "Items must be selected in order to perform actions on them. No items have been changed."
    ]
    no_action = client.post(URL, {"processor": KEY, "_selected_action": "1"}, follow=True)
    assert messages_of(no_action) == ["No action selected."]
    assert dead_ids(journal) == ids


def test_actions_are_csrf_protected(journal):
    ids = fill(journal, 1)
    dead_letter(journal, ids)
    user = User.objects.create_superuser("admin", password="x")
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    form = {"action": "retry", "processor": KEY, "_selected_action": "1"}
    assert client.post(URL, form).status_code == 403
    assert dead_ids(journal) == ids
    token = client.get(URL).context["csrf_token"]
    assert client.post(URL, {**form, "csrfmiddlewaretoken": token}).status_code == 302
    assert dead_ids(journal) == []


def test_a_missing_broken_or_disabled_journal_is_shown_as_such(journal, settings):
    client = staff("view_journal", "change_journal")
    missing = page(client)
    assert f"the daemon has not run with these settings yet: no journal at {journal}" in text(
        missing
    )
    retried = client.post(
        URL, {"action": "retry", "processor": KEY, "_selected_action": "1"}, follow=True
    )
    assert messages_of(retried)[0].startswith(
        "Nothing changed: the daemon has not run with these settings yet"
    )
    assert not os.path.exists(journal), "the page never creates a journal"

    with open(journal, "wb") as broken:
        broken.write(b"not a SQLite file at all")
    damaged = page(client)
    assert f"inotifier journal recover --journal {journal}" in text(damaged)

    settings.INOTIFIER_JOURNAL = {"enabled": False}
    assert "the journal is disabled" in text(page(client))
    settings.INOTIFIER_JOURNAL = {"retain": -1}
    assert "INOTIFIER_JOURNAL[&#x27;retain&#x27;] is -1" in text(page(client))


def test_an_unknown_processor_in_the_address_is_named(journal):
    fill(journal, 1)
    response = page(staff("view_journal"), processor="gone", state="dead")
    assert "no processor &#x27;gone&#x27; in this journal" in text(response)
    assert response.context["selected"]["key"] == KEY


def test_the_running_daemon_is_shown(project, settings):
    project.watches = [(str(project.watched), "IN_CLOSE_WRITE", "log")]
    settings.PROJECT_PATH = str(project.path)
    result = project.start()
    assert result.returncode == 0, result.stderr
    pid = wait_for(project.watching, timeout=30, what="the daemon to run its watches")
    body = text(page(staff("view_journal")))
    assert f'<td class="pid">{pid}</td>' in body
    assert '<td class="state">running</td>' in body
    assert "1 (1 directories and files)" in body
    assert "events seen: <strong>" in body
