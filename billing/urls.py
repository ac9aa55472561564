"""The admin addresses of the pages this app took from llmadmin (issue 22), included under
/admin/llmadmin/ ahead of the admin itself."""

from __future__ import annotations

from django.urls import re_path

from billing.views import moved_admin_page

MOVED_PAGES = "usagerecord|dailyusage|groupbudget|developerbudget"

urlpatterns = [
    re_path(rf"^(?P<page>(?:{MOVED_PAGES})/.*)$", moved_admin_page, name="moved-admin-page"),
]
