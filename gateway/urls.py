"""The gateway's APIs: OpenAI's under /gateway/openai/v1, Anthropic's under /gateway/anthropic."""

from django.urls import path

from gateway import openai_api

app_name = "gateway"
urlpatterns = [
    path("openai/v1/models", openai_api.models, name="openai-models"),
    path("openai/v1/chat/completions", openai_api.chat_completions, name="openai-chat"),
    path("openai/v1/responses", openai_api.responses, name="openai-responses"),
]
