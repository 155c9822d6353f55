from django.contrib import admin

from received.models import ReceivedFile


@admin.register(ReceivedFile)
class ReceivedFileAdmin(admin.ModelAdmin):
    """Lists what the daemon recorded; the records are facts, so they are read-only here."""

    list_display = ["path", "size", "renamed_from", "event_id", "received_at"]
    search_fields = ["path", "renamed_from"]
    date_hierarchy = "received_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
