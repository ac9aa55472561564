"""A developer's chat turn through the public API, and what it left stored."""

from __future__ import annotations

import json
from typing import Any

from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.urls import reverse

from chat.models import Conversation, Message
from llmadmin.models import LLMModel


def send(
    client: Client,
    model: LLMModel,
    message: str = "Hi",
    conversation: Conversation | int | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """One turn through POST /api/v1/chat/ under Django's ASGI handler, as the logged-in user
    of `client`: the server-sent events the user got, in order."""
    payload: dict[str, Any] = {"model_id": model.pk, "message": message}
    if conversation:
        payload["conversation_id"] = getattr(conversation, "pk", conversation)
    status, body = post_chat(client, payload)
    assert status == 200, body
    return events_of(body)


def post_chat(client: Client, payload: dict[str, Any], **headers: str) -> tuple[int, bytes]:
    """POST /api/v1/chat/ under Django's ASGI handler, as the logged-in user of `client`: the
    status and the whole body (an event stream, or a refusal's JSON)."""
    return async_to_sync(post_chat_async)(client.cookies, payload, headers)


async def post_chat_async(
    cookies: Any, payload: dict[str, Any], headers: dict[str, str]
) -> tuple[int, bytes]:
    client = AsyncClient()
    client.cookies = cookies
    response = await client.post(
        reverse("api-chat"), payload, content_type="application/json", headers=headers
    )
    if not response.streaming:
        return response.status_code, response.content
    assert response["Content-Type"] == "text/event-stream"
    assert response.is_async  # the answer streams on the event loop
    return response.status_code, b"".join([chunk async for chunk in response.streaming_content])


def events_of(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(name, data) of each server-sent event in a body."""
    events = []
    for block in body.decode().strip().split("\n\n"):
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
