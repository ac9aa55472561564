"""HTTP clients of the provider APIs: verify a key and list models, with requests.

Each provider type names its client in the registry. Keys travel only in the auth header, to
the configured host: never in a URL, never logged, never sent on to another host.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

if TYPE_CHECKING:
    from llmadmin.models import LLMModel, Provider

CheckStatus = Literal["verified", "rejected", "unreachable"]
MAX_REDIRECTS = 3
MAX_PAGES = 20


class ProviderError(Exception):
    """A call that did not succeed; the message is for the administrator and has no key."""

    status: CheckStatus = "unreachable"


class KeyRejected(ProviderError):
    status: CheckStatus = "rejected"


class Unreachable(ProviderError):
    pass


@dataclass(frozen=True)
class RemoteModel:
    identifier: str
    context_limit: int | None = None


class ProviderClient:
    """OpenAI-style API: Bearer auth, GET {base}/models answering {"data": [{"id": ...}]}."""

    @sensitive_variables("api_key")
    def __init__(self, provider: Provider) -> None:
        api_key = provider.usable_api_key
        if api_key is None:
            raise ProviderError("No readable API key is set.")
        self.provider = provider
        self.api_key = api_key
        self.base_url = provider.effective_base_url

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def verify(self) -> None:
        """The cheapest authenticated call that costs nothing; raises ProviderError."""
        self.get_json(f"{self.base_url}/models")

    def list_models(self) -> list[RemoteModel]:
        return [
            RemoteModel(item["id"], item.get("context_length") or item.get("max_model_len"))
            for item in self.items(self.get_json(f"{self.base_url}/models"), "data")
        ]

    # --- chat, OpenAI style -----------------------------------------------------------
    max_tokens_field = "max_completion_tokens"

    def chat_url(self, model: LLMModel) -> str:
        return f"{self.base_url}/chat/completions"

    def chat_body(self, model: LLMModel, chat: ChatInput) -> dict[str, Any]:
        system = [{"role": "system", "content": chat.system}] if chat.system else []
        body: dict[str, Any] = {
            "model": model.identifier,
            "messages": system + chat.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        set_if(body, self.max_tokens_field, model.max_output_tokens)
        for name in ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty"):
            set_if(body, name, getattr(model, name))
        self.add_options(body, model.provider_options)
        return body

    def add_options(self, body: dict[str, Any], options: dict[str, Any]) -> None:
        set_if(body, "reasoning_effort", options.get("reasoning_effort"))
        set_if(body, "max_completion_tokens", options.get("max_completion_tokens"))
        # parallel_tool_calls belongs with tools: OpenAI refuses it in a request without any,
        # and these chats send none yet.

    def stream_chat(self, model: LLMModel, chat: ChatInput) -> Iterator[StreamEvent]:
        """Send the turn and yield the answer's text as it streams in, then its usage."""
        response = self.post_stream(self.chat_url(model), self.chat_body(model, chat))
        with response:
            yield from self.parse_stream(response)

    def post_stream(self, url: str, body: dict[str, Any]) -> requests.Response:
        response = self.send(
            "POST", url, ChatError, json=body, headers={"Accept": "text/event-stream"}, stream=True
        )
        if response.status_code >= 300:
            text = response.text[:4000]
            response.close()
            raise chat_error_for(response.status_code, text)
        return response

    def parse_stream(self, response: requests.Response) -> Iterator[StreamEvent]:
        for _, data in sse_events(response):
            if data == "[DONE]":
                return
            chunk = json_data(data)
            if "error" in chunk:
                raise mid_stream_error(chunk["error"])
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield TextDelta(text)
            usage = chunk.get("usage")
            if usage:
                yield Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        raise cut_off()

    def items(self, payload: Any, key: str) -> list[dict[str, Any]]:
        items = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get(self.id_field(key)), str)
            for item in items
        ):
            raise Unreachable(f"{self.host} answered with an unexpected model list.")
        return items

    def id_field(self, list_key: str) -> str:
        return "id"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET with the auth header, following redirects only within the same host."""
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            host = urlsplit(url).netloc
            response = self.send(
                "GET", url, Unreachable, params=params, headers={"Accept": "application/json"}
            )
            if not response.is_redirect:
                break
            target = urljoin(url, response.headers["Location"])
            if urlsplit(target)[:2] != origin:
                raise Unreachable(
                    f"{host} redirected to {urlsplit(target).netloc}; the key was not sent there."
                )
            url, params = target, None
        else:
            raise Unreachable(f"{host} redirected too many times.")

        if self.is_rejected(response):
            raise KeyRejected(f"The provider rejected the API key ({response.status_code}).")
        if response.status_code >= 400:
            raise Unreachable(
                f"{host} answered {response.status_code} to GET {urlsplit(url).path}."
            )
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"{host} answered with something that is not JSON.") from None

    def is_rejected(self, response: requests.Response) -> bool:
        return response.status_code in (401, 403)

    @sensitive_variables("headers")
    def send(
        self, method: str, url: str, failure: type[ProviderError], **kwargs: Any
    ) -> requests.Response:
        """One call with the auth header and timeouts; redirects are the caller's to follow."""
        host = urlsplit(url).netloc
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        try:
            return requests.request(
                method,
                url,
                headers=headers,
                timeout=(settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT),
                allow_redirects=False,
                **kwargs,
            )
        except requests.Timeout:
            raise failure(
                f"Could not reach {host}: timed out after {settings.PROVIDER_READ_TIMEOUT:g} s."
            ) from None
        except requests.RequestException as error:
            raise failure(f"Could not reach {host}: {describe(error)}.") from None


def describe(error: requests.RequestException) -> str:
    """A short, key-free description of a connection failure."""
    if isinstance(error, requests.ConnectionError):
        return "connection refused or host not found"
    return type(error).__name__


class AnthropicClient(ProviderClient):
    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/v1/models", {"limit": 1})

    def list_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"limit": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/v1/models", params)
            models += [
                RemoteModel(item["id"], item.get("max_input_tokens"))
                for item in self.items(payload, "data")
            ]
            if not payload.get("has_more") or not payload.get("last_id"):
                break
            params = {"limit": 1000, "after_id": payload["last_id"]}
        return models

    def chat_url(self, model: LLMModel) -> str:
        return f"{self.base_url}/v1/messages"

    def chat_body(self, model: LLMModel, chat: ChatInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model.identifier,
            "max_tokens": model.max_output_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
            "messages": chat.messages,
            "stream": True,
        }
        set_if(body, "system", chat.system or None)
        for name in ("temperature", "top_p", "top_k"):
            set_if(body, name, getattr(model, name))
        body.update(anthropic_options(model.provider_options))
        return body

    def parse_stream(self, response: requests.Response) -> Iterator[StreamEvent]:
        input_tokens = output_tokens = 0
        for event, data in sse_events(response):
            payload = json_data(data)
            if event == "error":
                raise mid_stream_error(payload.get("error"))
            if event == "message_start":
                usage = payload.get("message", {}).get("usage", {})
                input_tokens = sum(
                    usage.get(name) or 0
                    for name in (
                        "input_tokens",
                        "cache_creation_input_tokens",
                        "cache_read_input_tokens",
                    )
                )
            elif event == "content_block_delta":
                delta = payload.get("delta", {})
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
            elif event == "message_delta":
                output_tokens = payload.get("usage", {}).get("output_tokens", output_tokens)
            elif event == "message_stop":
                yield Usage(input_tokens, output_tokens)
                return
        raise cut_off()


class GoogleClient(ProviderClient):
    def is_rejected(self, response: requests.Response) -> bool:
        # Gemini answers a bad key with 400 and the reason API_KEY_INVALID.
        return super().is_rejected(response) or (
            response.status_code == 400 and "API_KEY_INVALID" in response.text
        )

    def auth_headers(self) -> dict[str, str]:
        # The header form, never ?key=: URLs end up in logs.
        return {"x-goog-api-key": self.api_key}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/v1beta/models", {"pageSize": 1})

    def id_field(self, list_key: str) -> str:
        return "name"

    def list_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"pageSize": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/v1beta/models", params)
            models += [
                RemoteModel(item["name"].removeprefix("models/"), item.get("inputTokenLimit"))
                for item in self.items(payload, "models")
                if "generateContent" in item.get("supportedGenerationMethods", [])
            ]
            if not payload.get("nextPageToken"):
                break
            params = {"pageSize": 1000, "pageToken": payload["nextPageToken"]}
        return models

    def chat_url(self, model: LLMModel) -> str:
        return f"{self.base_url}/v1beta/models/{model.identifier}:streamGenerateContent?alt=sse"

    def chat_body(self, model: LLMModel, chat: ChatInput) -> dict[str, Any]:
        roles = {"user": "user", "assistant": "model"}
        body: dict[str, Any] = {
            "contents": [
                {"role": roles[message["role"]], "parts": [{"text": message["content"]}]}
                for message in chat.messages
            ]
        }
        if chat.system:
            body["systemInstruction"] = {"parts": [{"text": chat.system}]}
        config: dict[str, Any] = {}
        for name, key in (
            ("max_output_tokens", "maxOutputTokens"),
            ("temperature", "temperature"),
            ("top_p", "topP"),
            ("top_k", "topK"),
            ("presence_penalty", "presencePenalty"),
            ("frequency_penalty", "frequencyPenalty"),
        ):
            set_if(config, key, getattr(model, name))
        options = model.provider_options
        thinking: dict[str, Any] = {}
        set_if(thinking, "thinkingBudget", options.get("thinking_budget"))
        set_if(thinking, "thinkingLevel", options.get("thinking_level"))
        set_if(thinking, "includeThoughts", options.get("include_thoughts"))
        if thinking:
            config["thinkingConfig"] = thinking
        if config:
            body["generationConfig"] = config
        if options.get("safety_settings"):
            body["safetySettings"] = [
                {"category": category, "threshold": threshold}
                for category, threshold in options["safety_settings"].items()
            ]
        return body

    def parse_stream(self, response: requests.Response) -> Iterator[StreamEvent]:
        usage, finished = None, False
        for _, data in sse_events(response):
            chunk = json_data(data)
            if "error" in chunk:
                raise mid_stream_error(chunk["error"])
            for candidate in chunk.get("candidates") or []:
                for part in (candidate.get("content") or {}).get("parts") or []:
                    if part.get("text") and not part.get("thought"):
                        yield TextDelta(part["text"])
                finished = finished or bool(candidate.get("finishReason"))
            metadata = chunk.get("usageMetadata")
            if metadata:
                usage = Usage(
                    metadata.get("promptTokenCount", 0), metadata.get("candidatesTokenCount", 0)
                )
        if not finished:
            raise cut_off()
        if usage:
            yield usage


class AzureClient(ProviderClient):
    """Azure OpenAI's v1 API: the models the resource can use (deployments are ARM-only)."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/openai/v1/models")

    def list_models(self) -> list[RemoteModel]:
        payload = self.get_json(f"{self.base_url}/openai/v1/models")
        return [RemoteModel(item["id"]) for item in self.items(payload, "data")]

    def chat_url(self, model: LLMModel) -> str:
        # The v1 API takes the deployment name as the model.
        return f"{self.base_url}/openai/v1/chat/completions"


class BedrockClient(ProviderClient):
    """Bedrock API keys as Bearer tokens, on the control-plane host of the region."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        # The runtime host serves chat; models are listed by the control plane, unless the
        # admin points both at a proxy.
        self.control_url = (
            self.base_url
            if provider.base_url
            else f"https://bedrock.{provider.region}.amazonaws.com"
        )

    @property
    def host(self) -> str:
        return urlsplit(self.control_url).netloc

    def verify(self) -> None:
        self.get_json(f"{self.control_url}/foundation-models")

    def id_field(self, list_key: str) -> str:
        return {"modelSummaries": "modelId"}.get(list_key, "inferenceProfileId")

    def list_models(self) -> list[RemoteModel]:
        foundation = self.get_json(f"{self.control_url}/foundation-models")
        profiles = self.get_json(f"{self.control_url}/inference-profiles")
        return [
            RemoteModel(item["modelId"]) for item in self.items(foundation, "modelSummaries")
        ] + [
            RemoteModel(item["inferenceProfileId"])
            for item in self.items(profiles, "inferenceProfileSummaries")
        ]

    def chat_url(self, model: LLMModel) -> str:
        return f"{self.base_url}/model/{quote(model.identifier, safe='')}/converse-stream"

    def chat_body(self, model: LLMModel, chat: ChatInput) -> dict[str, Any]:
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
        # Claude's own fields travel in additionalModelRequestFields, in Anthropic's shapes.
        additional: dict[str, Any] = anthropic_options(model.provider_options)
        set_if(additional, "top_k", model.top_k)
        if additional:
            body["additionalModelRequestFields"] = additional
        return body

    def parse_stream(self, response: requests.Response) -> Iterator[StreamEvent]:
        stopped, usage = False, None
        for headers, payload in aws_event_stream(response):
            if headers.get(":message-type") == "exception":
                kind = headers.get(":exception-type", "")
                raise mid_stream_error({"type": kind.replace("throttling", "rate_limit")})
            event = json_data(payload.decode("utf-8"))
            kind = headers.get(":event-type")
            if kind == "contentBlockDelta":
                text = event.get("delta", {}).get("text")
                if text:
                    yield TextDelta(text)
            elif kind == "messageStop":
                stopped = True
            elif kind == "metadata":
                tokens = event.get("usage", {})
                usage = Usage(tokens.get("inputTokens", 0), tokens.get("outputTokens", 0))
        if not stopped:
            raise cut_off()
        if usage:
            yield usage


class OpenRouterClient(ProviderClient):
    max_tokens_field = "max_tokens"

    def add_options(self, body: dict[str, Any], options: dict[str, Any]) -> None:
        body.update(reasoning_options(options))
        routing: dict[str, Any] = {}
        set_if(routing, "order", options.get("provider_order"))
        set_if(routing, "allow_fallbacks", options.get("allow_fallbacks"))
        if routing:
            body["provider"] = routing

    def verify(self) -> None:
        # The model list may answer without checking the key; /key always checks it.
        self.get_json(f"{self.base_url}/key")


class VercelClient(ProviderClient):
    max_tokens_field = "max_tokens"

    def add_options(self, body: dict[str, Any], options: dict[str, Any]) -> None:
        body.update(reasoning_options(options))
        gateway: dict[str, Any] = {}
        set_if(gateway, "order", options.get("provider_order"))
        set_if(gateway, "only", options.get("provider_only"))
        set_if(gateway, "models", options.get("fallback_models"))
        if gateway:
            body["providerOptions"] = {"gateway": gateway}

    def verify(self) -> None:
        # The model list seems public; the credits balance needs a valid key.
        self.get_json(f"{self.base_url}/credits")

    def list_models(self) -> list[RemoteModel]:
        return [
            RemoteModel(item["id"], item.get("context_window"))
            for item in self.items(self.get_json(f"{self.base_url}/models"), "data")
        ]


# --- Chat: the model's configuration mapped onto each provider's request, answers streamed ---

# Anthropic's API requires max_tokens; used when the model leaves max output tokens unset.
ANTHROPIC_DEFAULT_MAX_TOKENS = 8192


@dataclass(frozen=True)
class ChatInput:
    """What a chat turn sends: a summary of older messages, then the recent messages."""

    system: str
    messages: list[dict[str, str]]  # {"role": "user" | "assistant", "content": ...}


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    """Tokens of a turn; input counts everything the model read, cached tokens included."""

    input_tokens: int
    output_tokens: int


StreamEvent = TextDelta | Usage


class ChatError(ProviderError):
    pass


def set_if(target: dict[str, Any], key: str, value: Any) -> None:
    """Unset options are not sent: the provider's default applies."""
    if value is not None:
        target[key] = value


def chat_error_for(status: int, text: str) -> ChatError:
    """A key-free message for a refused chat request (provider texts may echo key parts)."""
    lowered = text.lower()
    if status in (401, 403):
        return ChatError(f"The provider rejected the API key ({status}).")
    if status == 429:
        return ChatError("The provider's rate limit was reached (429): try again in a moment.")
    if status in (503, 529) or "overloaded" in lowered:
        return ChatError(f"The provider is overloaded ({status}): try again in a moment.")
    if status in (400, 413) and any(
        words in lowered
        for words in (
            "context length",
            "context window",
            "too long",
            "too many tokens",
            "input token count",
        )
    ):
        return ChatError("The conversation is too long for this model's context limit.")
    return ChatError(f"The provider refused the request ({status}).")


def cut_off() -> ChatError:
    return ChatError("The provider's answer was cut off before it finished.")


def sse_events(response: requests.Response) -> Iterator[tuple[str, str]]:
    """(event name, data) of a server-sent event stream; comments are skipped."""
    event, data = "", []
    try:
        for line in response.iter_lines(decode_unicode=True):
            if line == "":
                if data:
                    yield event, "\n".join(data)
                event, data = "", []
            elif line.startswith(":"):
                continue
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
        if data:
            yield event, "\n".join(data)
    except requests.RequestException:
        raise cut_off() from None


def json_data(data: str) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except ValueError:
        raise ChatError("The provider sent a malformed event.") from None
    if not isinstance(payload, dict):
        raise ChatError("The provider sent a malformed event.")
    return payload


def mid_stream_error(error: Any) -> ChatError:
    kind = str(error.get("type") or error.get("code") or "") if isinstance(error, dict) else ""
    if "overloaded" in kind:
        return ChatError("The provider is overloaded: try again in a moment.")
    if "rate_limit" in kind or kind == "429":
        return ChatError("The provider's rate limit was reached: try again in a moment.")
    return ChatError(f"The provider reported an error mid-answer ({kind or 'unknown'}).")


def anthropic_options(options: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's thinking and effort fields (also Bedrock's additionalModelRequestFields)."""
    fields: dict[str, Any] = {}
    if options.get("thinking_budget_tokens") is not None:
        fields["thinking"] = {"type": "enabled", "budget_tokens": options["thinking_budget_tokens"]}
    if options.get("effort") is not None:
        fields["output_config"] = {"effort": options["effort"]}
    return fields


def reasoning_options(options: dict[str, Any]) -> dict[str, Any]:
    """OpenRouter's and Vercel's reasoning object, with only the keys that are set."""
    reasoning: dict[str, Any] = {}
    set_if(reasoning, "enabled", options.get("reasoning_enabled"))
    set_if(reasoning, "effort", options.get("reasoning_effort"))
    return {"reasoning": reasoning} if reasoning else {}


def aws_event_stream(response: requests.Response) -> Iterator[tuple[dict[str, str], bytes]]:
    """Messages of AWS's binary event stream: (string headers, payload), CRCs checked.

    Each message: total length, headers length, prelude CRC (4 bytes each), headers, payload,
    message CRC. Header values here are strings (type 7).
    """
    buffer = b""
    try:
        for chunk in response.iter_content(chunk_size=None):
            buffer += chunk
            while len(buffer) >= 12:
                total, headers_length, prelude_crc = struct.unpack(">III", buffer[:12])
                if zlib.crc32(buffer[:8]) != prelude_crc:
                    raise ChatError("The provider sent a corrupt event stream.")
                if len(buffer) < total:
                    break
                message, buffer = buffer[:total], buffer[total:]
                if zlib.crc32(message[:-4]) != struct.unpack(">I", message[-4:])[0]:
                    raise ChatError("The provider sent a corrupt event stream.")
                yield (
                    parse_event_headers(message[12 : 12 + headers_length]),
                    message[12 + headers_length : -4],
                )
    except requests.RequestException:
        raise cut_off() from None
    if buffer:
        raise cut_off()


def parse_event_headers(raw: bytes) -> dict[str, str]:
    headers, position = {}, 0
    while position < len(raw):
        name_length = raw[position]
        name = raw[position + 1 : position + 1 + name_length].decode()
        position += 1 + name_length
        if raw[position] != 7:
            raise ChatError("The provider sent an event header this client does not read.")
        (value_length,) = struct.unpack(">H", raw[position + 1 : position + 3])
        headers[name] = raw[position + 3 : position + 3 + value_length].decode()
        position += 3 + value_length
    return headers
