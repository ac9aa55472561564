"""The gateway's two API families through their official SDKs: a client of the gateway, a
chat call and what the client reads of its answer."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai

SDK = openai.OpenAI | anthropic.Anthropic
HI = [{"role": "user", "content": "Hi"}]


def sdk(
    family: str, server: str, secret: str, max_retries: int = 0, sent: list | None = None
) -> SDK:
    """The family's official client of the gateway (retrying nothing itself unless told);
    `sent` collects each request it sends."""
    http_client = (
        httpx2.Client(event_hooks={"request": [sent.append]}) if sent is not None else None
    )
    if family == "openai":
        return openai.OpenAI(
            base_url=f"{server}/gateway/openai/v1",
            api_key=secret,
            max_retries=max_retries,
            http_client=http_client,
        )
    return anthropic.Anthropic(
        base_url=f"{server}/gateway/anthropic",
        api_key=secret,
        max_retries=max_retries,
        http_client=http_client,
    )


def request_of(client: SDK, stream: bool) -> tuple[Any, dict[str, Any]]:
    """The SDK's chat method (its streaming-response form: the raw answer readable too) and
    its arguments."""
    if isinstance(client, openai.OpenAI):
        return client.chat.completions, {"model": "gpt-4.1", "messages": HI, "stream": stream}
    arguments = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": HI}
    return client.messages, {**arguments, "stream": stream}


def asked(client: SDK, stream: bool = False) -> Any:
    """A chat call: the answer, or its stream (unread)."""
    api, arguments = request_of(client, stream)
    return api.create(**arguments)


def answer_text(client: SDK, stream: bool = False) -> str:
    """A chat call's whole answer text, as the SDK reads it."""
    answer = asked(client, stream)
    if isinstance(client, openai.OpenAI):
        if stream:
            return "".join(
                chunk.choices[0].delta.content or "" for chunk in answer if chunk.choices
            )
        return answer.choices[0].message.content
    if stream:
        return "".join(
            event.delta.text
            for event in answer
            if event.type == "content_block_delta" and event.delta.type == "text_delta"
        )
    return answer.content[0].text


def raw_answer(client: SDK, stream: bool) -> tuple[int, str]:
    """A chat call's status, and its headers and body as they reached the client."""
    api, arguments = request_of(client, stream)
    with api.with_streaming_response.create(**arguments) as response:
        body = response.read().decode()
        return response.status_code, f"{dict(response.headers)}\n{body}"


def said(error: openai.APIStatusError | anthropic.APIStatusError) -> str:
    """The message of an SDK's error, in its family's error shape."""
    body = error.body
    return body["message"] if isinstance(error, openai.APIStatusError) else body["error"]["message"]
