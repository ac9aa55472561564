"""Error reports hide secrets even with DEBUG on.

Django's filter steps aside under DEBUG and shows every POST value and frame local on its
error page; `scripts/run` turns DEBUG on, and a 500 while an admin saves a provider would put
the key on the screen. This filter always applies sensitive_variables and
sensitive_post_parameters, and the settings' own cleansing.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter


class SecretsHiddenFilter(SafeExceptionReporterFilter):
    def is_active(self, request: HttpRequest | None) -> bool:
        return True
