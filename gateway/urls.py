"""The gateway's APIs: OpenAI's under /gateway/openai/v1, Anthropic's under /gateway/anthropic."""

from django.urls import path  # noqa: F401

app_name = "gateway"
urlpatterns: list = []
