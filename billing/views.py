from __future__ import annotations

from urllib.parse import quote

from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.urls import reverse


def moved_admin_page(request: HttpRequest, page: str) -> HttpResponsePermanentRedirect:
    """A usage or budget page at the address it had under llmadmin: the same page under
    billing, its query string kept (bookmarks, links in mails and notes)."""
    url = f"{reverse('admin:index')}billing/{quote(page)}"
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(f"{url}?{query}" if query else url)
