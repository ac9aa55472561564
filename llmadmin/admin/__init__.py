"""The admin, a module per area; importing them registers their admins."""

from __future__ import annotations

from django.contrib import admin

# The usage dashboard's admin, registered where it is defined.
from llmadmin import dashboard  # noqa: F401
from llmadmin.admin import audit, billing, groups, llm_models, providers  # noqa: F401

admin.site.site_header = "llmadmin"
admin.site.site_title = "llmadmin"
admin.site.index_title = "LLM providers and models"
