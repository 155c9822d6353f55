"""The "inotifier" section of Django's admin: the journal page. What ``manage.py
inotifier_journal`` shows and does on a shell, for staff in the browser: the daemon, each
processor's pending and dead-lettered events a page at a time, and retry or purge of the dead
letters picked. It reads and changes the journal through the command's native functions, in the
web server's process, while the daemon runs.

Permissions (of the unmanaged model ``inotifier.Journal``): ``view_journal`` (or
``change_journal``) shows the page; ``change_journal`` retries; ``delete_journal`` purges. Pending
events can be looked at, never purged, here: that loses events, and is left to the command."""

from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from inotifier import _native, journal, journal_page
from inotifier.models import Journal

ACTIONS = {
    "retry": "Retry selected dead letters",
    "purge": "Purge selected dead letters",
}


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@admin.register(Journal)
class JournalAdmin(admin.ModelAdmin):
    list_per_page = 50
    change_list_template = "admin/inotifier/journal/change_list.html"
    purge_confirmation_template = "admin/inotifier/journal/purge_confirmation.html"

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        # One page: there are no journal rows to add, change or delete one by one.
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.run_action(request)
        return self.show(request)

    def allowed_actions(self, request):
        allowed = []
        if self.has_change_permission(request):
            allowed.append("retry")
        if self.has_delete_permission(request):
            allowed.append("purge")
        return [(name, ACTIONS[name]) for name in allowed]

    def page_url(self, processor=None, state="dead", number=None):
        query = {"processor": processor, "state": state, "p": number}
        query = {key: value for key, value in query.items() if value is not None}
        url = reverse(f"{self.admin_site.name}:inotifier_journal_changelist")
        return f"{url}?{urlencode(query)}" if query else url

    def show(self, request):
        path, processors, journal_error = journal_page.summary()
        state = "pending" if request.GET.get("state") == "pending" else "dead"
        dead = state == "dead"
        problems = [journal_error] if journal_error else []
        wanted = request.GET.get("processor")
        selected = next((p for p in processors if p["key"] == wanted), None)
        if wanted is not None and selected is None and processors:
            problems.append(f"no processor {wanted!r} in this journal")
        if selected is None and processors:
            # The first with dead letters: what an operator opens the page for.
            selected = next((p for p in processors if p["dead"]), processors[0])
        page = None
        if selected is not None:
            page, list_error = journal_page.page(
                path,
                selected,
                dead,
                selected[state],
                request.GET.get("p", 1),
                self.list_per_page,
            )
            if list_error:
                problems.append(list_error)
        for processor in processors:
            processor["dead_url"] = self.page_url(processor["key"], "dead")
            processor["pending_url"] = self.page_url(processor["key"], "pending")
        actions = self.allowed_actions(request) if dead else []
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "inotifier journal",
            "daemon": journal_page.daemon(),
            "journal_path": path,
            "processors": processors,
            "selected": selected,
            "state": state,
            "dead": dead,
            "page": page,
            "page_links": self.page_links(page, selected, state),
            "problems": problems,
            "actions": actions,
            "per_page": self.list_per_page,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_list_template, context)

    def page_links(self, page, selected, state):
        if page is None or page.paginator.num_pages < 2:
            return []
        links = []
        for number in page.paginator.get_elided_page_range(page.number):
            if number == page.paginator.ELLIPSIS:
                links.append({"text": number})
            else:
                url = self.page_url(selected["key"], state, number)
                links.append({"text": number, "url": url, "current": number == page.number})
        return links

    def run_action(self, request):
        action = request.POST.get("action", "")
        processor = request.POST.get("processor") or None
        back = HttpResponseRedirect(self.page_url(processor, "dead", request.POST.get("p") or None))
        if action == "retry" and not self.has_change_permission(request):
            raise PermissionDenied
        if action == "purge" and not self.has_delete_permission(request):
            raise PermissionDenied
        if action not in ACTIONS:
            messages.warning(request, "No action selected.")
            return back
        try:
            ids = sorted({int(i) for i in request.POST.getlist("_selected_action")})
        except ValueError:
            messages.error(request, "The selected event ids are not numbers: nothing changed.")
            return back
        if not ids:
            messages.warning(
                request,
                "Items must be selected in order to perform actions on them. No items have "
                "been changed.",
            )
            return back
        if processor is None:
            messages.error(request, "No processor given: nothing changed.")
            return back
        if action == "purge" and request.POST.get("post") != "yes":
            return self.confirm_purge(request, processor, ids)
        try:
            path = journal.path()
            if action == "retry":
                count = _native.journal_retry(path, processor, ids=ids)
            else:
                count = _native.journal_purge(path, True, processor, ids=ids)
        except (journal.Unavailable, RuntimeError, ValueError) as error:
            messages.error(request, f"Nothing changed: {error}")
            return back
        if action == "retry":
            done = (
                f"{plural(count, 'dead letter')} of {processor} made pending again: the daemon "
                "delivers them again within a second while it runs."
            )
        else:
            done = f"{plural(count, 'dead letter')} of {processor} purged."
        if count < len(ids):
            done += (
                f" {len(ids) - count} of the {len(ids)} selected were no longer dead letters "
                "(retried or purged meanwhile)."
            )
        messages.add_message(request, messages.SUCCESS if count else messages.WARNING, done)
        return back

    def confirm_purge(self, request, processor, ids):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Are you sure?",
            "processor": processor,
            "ids": ids,
            "p": request.POST.get("p", ""),
            "back_url": self.page_url(processor, "dead", request.POST.get("p") or None),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.purge_confirmation_template, context)
