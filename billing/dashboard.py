"""The usage dashboard: the admin's page for the daily sums (DailyUsage), in place of their
change list. Sums over a range of days with a chart and a table per dimension, and the daily
rows as CSV. The sums are kept by the ledger's writes (billing.ledger): nothing here edits
them."""

from __future__ import annotations

import csv
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    QueryDict,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from billing.models import DailyUsage
from billing.report import CSV_HEADER, MAX_DAYS, METRICS, usage_report, usage_rows
from llmadmin.exports import spreadsheet_safe

# The range shown when none is asked for: the last 30 days, today included.
DEFAULT_DAYS = 30
# CSV lines handed to an ASGI server at a time.
CSV_BATCH = 1000


class UsageRangeForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    metric = forms.ChoiceField(label="Chart", choices=list(METRICS.items()))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                self.add_error("end", "The end is before the start.")
            elif (end - start).days + 1 > MAX_DAYS:
                self.add_error("end", f"At most {MAX_DAYS} days at a time.")
        return cleaned


def usage_range_form(query: QueryDict) -> UsageRangeForm:
    """Bound to what was asked, the default range and metric filling in what was not (an
    empty value stays empty: it was typed)."""
    today = timezone.localdate()
    data = {
        "start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
        "end": today.isoformat(),
        "metric": "cost",
    }
    data.update({name: query[name] for name in data if name in query})
    return UsageRangeForm(data)


@admin.register(DailyUsage)
class UsageDashboardAdmin(admin.ModelAdmin):
    """The admin index's "Usage": its change list is the dashboard; no add, change or delete
    (the sums follow the ledger). Needs the view permission (billing.view_dailyusage)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        # The dashboard and its CSV only: a daily row has no page of its own.
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="billing_dailyusage_changelist",
            ),
            path(
                "csv/",
                self.admin_site.admin_view(self.csv_view),
                name="billing_dailyusage_csv",
            ),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = usage_range_form(request.GET)
        report = csv_query = None
        if form.is_valid():
            report = usage_report(
                start=form.cleaned_data["start"],
                end=form.cleaned_data["end"],
                metric=form.cleaned_data["metric"],
            )
            csv_query = urlencode(
                {"start": report.start.isoformat(), "end": report.end.isoformat()}
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage",
            "opts": self.opts,
            "form": form,
            "report": report,
            "csv_query": csv_query,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/billing/usage_dashboard.html", context)

    def csv_view(self, request: HttpRequest) -> HttpResponse:
        """Every daily row of the range, streamed; text cells never start a formula."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = usage_range_form(request.GET)
        if not form.is_valid():
            # The dashboard shows what is wrong with the range.
            changelist = reverse("admin:billing_dailyusage_changelist")
            return HttpResponseRedirect(f"{changelist}?{request.GET.urlencode()}")
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        lines = csv_lines(usage_rows(start=start, end=end))
        response = StreamingHttpResponse(
            in_batches(lines) if isinstance(request, ASGIRequest) else lines,
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="llmadmin-usage-{start.isoformat()}-{end.isoformat()}.csv"'
        )
        return response


class Line:
    """What csv.writer writes to: the line it was given."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    writer = csv.writer(Line())
    yield writer.writerow(CSV_HEADER)
    for row in rows:
        yield writer.writerow(
            [spreadsheet_safe(cell) if isinstance(cell, str) else cell for cell in row]
        )


async def in_batches(lines: Iterator[str]) -> AsyncIterator[str]:
    """Under ASGI, Django reads a synchronous iterator whole before sending any of it: a year
    of rows would sit in memory. This reads it a batch at a time, in the request's thread
    (where its database cursor is)."""
    take = sync_to_async(lambda: "".join(itertools.islice(lines, CSV_BATCH)))
    while batch := await take():
        yield batch
