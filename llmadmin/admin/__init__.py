"""The admin, a module per area; importing them registers their admins."""

from __future__ import annotations

from django.contrib import admin

from llmadmin.admin import audit, groups, llm_models, providers  # noqa: F401

admin.site.site_header = "llmadmin"
admin.site.site_title = "llmadmin"
admin.site.index_title = "LLM providers and models"
