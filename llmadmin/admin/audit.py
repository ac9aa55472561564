"""The audit log's admin: auditlog's own, in our labels, with a CSV export."""

from __future__ import annotations

import csv
import json

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry as AuditEntry
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from llmadmin.audit import (
    CONNECTION_TEST,
    entries_related_names,
    labelled_changes,
    readable_changes,
)
from llmadmin.exports import spreadsheet_safe
from llmadmin.models import Provider


class AuditLogEntryAdmin(LogEntryAdmin):
    """auditlog's own view of the audit (filters by action, resource type, import), in the
    fields' labels and the values' names, plus export of what is selected."""

    actions = ["export_csv"]

    @admin.display(description="Changes")
    def msg_short(self, entry: AuditEntry) -> str:
        # auditlog lists an access with no changes; ours are connection tests of typed values.
        if entry.action == AuditEntry.Action.ACCESS and entry.changes_dict:
            return "Connection test with typed " + ", ".join(
                str(Provider._meta.get_field(name).verbose_name)
                for name in entry.changes_dict
                if name != CONNECTION_TEST
            )
        if entry.action == AuditEntry.Action.DELETE:
            return ""
        return ", ".join(label for label, _, _ in labelled_changes(entry))

    @admin.display(description="Changes")
    def msg(self, entry: AuditEntry) -> str:
        return format_html(
            '<table class="audit-changes"><thead><tr><th>Field</th><th>Before</th>'
            "<th>After</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", readable_changes(entry)
            ),
        )

    @admin.action(description="Export selected entries (CSV)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[AuditEntry]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="llmadmin-audit.csv"'
        writer = csv.writer(response)
        writer.writerow(["time", "actor", "action", "resource", "object", "changes", "import"])
        rows = list(queryset.select_related("actor", "content_type").order_by("timestamp", "pk"))
        names = entries_related_names(rows)
        for entry in rows:
            changes = {
                label: [before, after] for label, before, after in readable_changes(entry, names)
            }
            writer.writerow(
                spreadsheet_safe(cell)
                for cell in (
                    entry.timestamp.isoformat(),
                    entry.actor.get_username() if entry.actor else "",
                    entry.get_action_display(),
                    entry.content_type.model,
                    entry.object_repr,
                    json.dumps(changes),
                    entry.cid or "",
                )
            )
        return response


admin.site.unregister(AuditEntry)
admin.site.register(AuditEntry, AuditLogEntryAdmin)
