"""The gateway's APIs: OpenAI's under /gateway/openai/v1, Anthropic's under /gateway/anthropic."""

from django.urls import path, re_path

from gateway import anthropic_api, openai_api

app_name = "gateway"
urlpatterns = [
    path("openai/v1/models", openai_api.models, name="openai-models"),
    path("openai/v1/chat/completions", openai_api.chat_completions, name="openai-chat"),
    path("openai/v1/responses", openai_api.responses, name="openai-responses"),
    path("anthropic/v1/messages", anthropic_api.messages, name="anthropic-messages"),
    path(
        "anthropic/v1/messages/count_tokens",
        anthropic_api.count_tokens,
        name="anthropic-count-tokens",
    ),
    path("anthropic/v1/models", anthropic_api.models, name="anthropic-models"),
    # Every other path is answered in its API's shape, not Django's HTML 404.
    re_path(r"^openai/(?P<path>.*)$", openai_api.no_endpoint),
    re_path(r"^anthropic/(?P<path>.*)$", anthropic_api.no_endpoint),
]
