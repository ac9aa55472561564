"""A developer's chat turn through the public API, and what it left stored."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from django.urls import reverse

from chat.models import Conversation, Message
from llmadmin.models import LLMModel


def send(
    client: Client,
    model: LLMModel,
    message: str = "Hi",
    conversation: Conversation | int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """One turn through POST /api/v1/chat/: the server-sent events the user got, in order."""
    payload: dict[str, Any] = {"model_id": model.pk, "message": message}
    if conversation:
        payload["conversation_id"] = getattr(conversation, "pk", conversation)
    response = client.post(reverse("api-chat"), payload, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    events = []
    for block in body.strip().split("\n\n"):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def conversation_with_summary(owner: Any, summary: str) -> Conversation:
    """A conversation whose older messages were summarised: the next turn sends the summary."""
    conversation = Conversation.objects.create(owner=owner)
    Message.objects.create(conversation=conversation, role=Message.Role.SUMMARY, content=summary)
    return conversation


def texts(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The pieces of answer text the user saw."""
    return [data["text"] for name, data in events if name == "delta"]


def stored_messages() -> list[tuple[str, str, str]]:
    """(role, content, error) of every stored message, oldest first."""
    return [(m.role, m.content, m.error) for m in Message.objects.order_by("pk")]
