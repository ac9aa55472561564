"""AWS Bedrock's Converse API: Claude's options and rules from the Anthropic module, Converse's
request mapping, and the AWS event stream read by botocore's parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import requests
from botocore.eventstream import EventStreamBuffer, ParserError

from llmadmin.providers import anthropic
from llmadmin.providers.base import SAMPLING, ModelSettings, ProviderType
from llmadmin.providers.http import (
    MAX_PAGES,
    ChatInput,
    ProviderClient,
    RemoteModel,
    StreamEvent,
    TextDelta,
    Usage,
    cut_off,
    json_data,
    malformed,
    mid_stream_error,
    set_if,
    token_count,
)


class BedrockClient(ProviderClient):
    """Bedrock API keys as Bearer tokens: chat on the runtime host, lists on the control plane."""

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.connection.api_key}"}

    @property
    def control_url(self) -> str:
        # Models are listed by the control plane, unless the admin points both at a proxy.
        return (
            self.connection.base_url_override
            or f"https://bedrock.{self.connection.region}.amazonaws.com"
        )

    @property
    def host(self) -> str:
        return self.control_url.split("://", 1)[-1].split("/", 1)[0]

    def verify_key(self) -> None:
        self.get_json(f"{self.control_url}/foundation-models")

    def fetch_models(self) -> list[RemoteModel]:
        foundation = self.get_json(f"{self.control_url}/foundation-models")
        models = [
            RemoteModel(item["modelId"])
            for item in self.items(foundation, "modelSummaries", id_field="modelId")
        ]
        # Inference profiles come in pages (nextToken), as botocore's paginator reads them.
        params: dict[str, Any] = {"maxResults": 1000}
        for _ in range(MAX_PAGES):
            profiles = self.get_json(f"{self.control_url}/inference-profiles", params)
            models += [
                RemoteModel(item["inferenceProfileId"])
                for item in self.items(
                    profiles, "inferenceProfileSummaries", id_field="inferenceProfileId"
                )
            ]
            token = profiles.get("nextToken")
            if not isinstance(token, str) or not token:
                break
            params = {"maxResults": 1000, "nextToken": token}
        return models

    def chat_body(self, model: ModelSettings, chat: ChatInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [
                {"role": message["role"], "content": [{"text": message["content"]}]}
                for message in chat.messages
            ]
        }
        if chat.system:
            body["system"] = [{"text": chat.system}]
        inference: dict[str, Any] = {}
        set_if(inference, "maxTokens", model.max_output_tokens)
        set_if(inference, "temperature", model.temperature)
        set_if(inference, "topP", model.top_p)
        if inference:
            body["inferenceConfig"] = inference
        # Effort is Converse's own field (botocore's bedrock-runtime model: outputConfig.effort).
        if model.options.get("effort") is not None:
            body["outputConfig"] = {"effort": model.options["effort"]}
        # Claude's thinking and top K travel in additionalModelRequestFields, in Anthropic's
        # shapes.
        additional: dict[str, Any] = {}
        set_if(additional, "thinking", anthropic.thinking_field(model.options))
        set_if(additional, "top_k", model.top_k)
        if additional:
            body["additionalModelRequestFields"] = additional
        return body

    def stream(self, model: ModelSettings, chat: ChatInput) -> Iterator[StreamEvent]:
        url = f"{self.base_url}/model/{quote(model.identifier, safe='')}/converse-stream"
        response = self.post_stream(url, self.chat_body(model, chat))
        with response:
            yield from parse_stream(response)


# Exception types of the Converse stream, by what they mean to the user.
THROTTLED = ("throttlingException",)
OVERLOADED = ("serviceUnavailableException", "modelNotReadyException")


def parse_stream(response: requests.Response) -> Iterator[StreamEvent]:
    stopped, usage = False, None
    for headers, payload in event_stream(response):
        if headers.get(":message-type") in ("exception", "error"):
            kind = str(headers.get(":exception-type", ""))
            raise mid_stream_error(
                "rate_limit" if kind in THROTTLED else "overloaded" if kind in OVERLOADED else ""
            )
        event = json_data(payload)
        kind = headers.get(":event-type")
        if kind == "contentBlockDelta":
            delta = event.get("delta")
            text = delta.get("text") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                yield TextDelta(text)
        elif kind == "messageStop":
            stopped = True
        elif kind == "metadata" and isinstance(event.get("usage"), dict):
            # Everything the model read: inputTokens leaves out cache reads and writes.
            usage = Usage(
                sum(
                    token_count(event["usage"], name)
                    for name in ("inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens")
                ),
                token_count(event["usage"], "outputTokens"),
            )
    if not stopped:
        raise cut_off()
    if usage:
        yield usage


def event_stream(response: requests.Response) -> Iterator[tuple[dict[str, Any], bytes]]:
    """(headers, payload) of each message of AWS's binary event stream, checked by botocore.

    A message left incomplete ends the stream: parse_stream then finds no messageStop.
    """
    buffer = EventStreamBuffer()
    try:
        for chunk in response.iter_content(chunk_size=None):
            buffer.add_data(chunk)
            for message in buffer:
                yield message.headers, message.payload
    except requests.RequestException:
        raise cut_off() from None
    except ParserError:
        raise malformed() from None


BEDROCK = ProviderType(
    slug="bedrock",
    key_env_var="AWS_BEARER_TOKEN_BEDROCK",
    label="AWS Bedrock",
    default_base_url="https://bedrock-runtime.{region}.amazonaws.com",
    base_url_example="https://bedrock-runtime.us-east-1.amazonaws.com",
    region_required=True,
    temperature_max=1,
    general_fields=SAMPLING | {"top_k"},
    client=BedrockClient,
    options=anthropic.OPTIONS,
    rules=anthropic.rules,
)
