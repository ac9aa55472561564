"""Google's Gemini API: options, rules, request mapping and stream parsing."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx2

from llmadmin.providers.base import (
    GENERAL_FIELDS,
    PENALTIES,
    SAMPLING,
    BoolOption,
    ChoiceOption,
    IntOption,
    MappingOption,
    ModelSettings,
    ProviderType,
    set_options,
    with_defaults,
)
from llmadmin.providers.catalog import ModelFacts
from llmadmin.providers.contract import (
    ChatInput,
    Conversation,
    Effort,
    Finish,
    Image,
    Message,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    Usage,
)
from llmadmin.providers.errors import (
    cut_off,
    error_kind,
    field_refused,
    malformed,
    malformed_tool_call,
    mid_stream_error,
    retry_after_of,
)
from llmadmin.providers.sse import (
    json_data,
    reported,
    sse_events,
    token_count,
    token_total,
    tool_arguments,
)
from llmadmin.providers.transport import MAX_PAGES, ProviderClient, set_if

# The SDK's HarmCategory (google-genai 3.6) that the Gemini API takes; the image categories
# are Vertex-only.
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_JAILBREAK",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
)
# "Deprecated: Election filter is not longer supported" (the SDK's docstring).
DEPRECATED_CATEGORIES = ("HARM_CATEGORY_CIVIC_INTEGRITY",)
SAFETY_THRESHOLDS = (
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
)


def category_label(category: str) -> str:
    """HARM_CATEGORY_HATE_SPEECH -> Hate speech."""
    label = category.removeprefix("HARM_CATEGORY_").replace("_", " ").capitalize()
    return f"{label} (deprecated)" if category in DEPRECATED_CATEGORIES else label


def safety_settings(thresholds: Mapping[str, str]) -> list[dict[str, str]]:
    """The request's safetySettings, in the categories' own order: a stored mapping's order is
    the database's (jsonb sorts keys), and the request should not depend on it."""
    return [
        {"category": category, "threshold": thresholds[category]}
        for category in SAFETY_CATEGORIES
        if category in thresholds
    ]


# Thinking options are named as the SDK sends them (the API reads both spellings); levels are
# enum names.
OPTIONS = (
    IntOption(
        name="thinking_budget",
        label="Thinking budget",
        path="generationConfig.thinkingConfig.thinking_budget",
        help_text="Tokens for thinking (Gemini 2.5): 0 turns thinking off, -1 lets the model "
        "decide. Ranges differ by model (2.5 Pro 128-32768, 2.5 Flash 0-24576, "
        "2.5 Flash-Lite 512-24576).",
        min=-1,
        max=32768,
        reasoning=True,
    ),
    ChoiceOption(
        name="thinking_level",
        label="Thinking level",
        path="generationConfig.thinkingConfig.thinking_level",
        to_request=str.upper,
        help_text="How much the model thinks (Gemini 3 and later); not together with a "
        "thinking budget. Not every model has every level.",
        # The SDK's ThinkingLevel (google-genai 3.6).
        choices=("minimal", "low", "medium", "high", "xhigh"),
        reasoning=True,
    ),
    BoolOption(
        name="include_thoughts",
        label="Include thoughts",
        path="generationConfig.thinkingConfig.include_thoughts",
        help_text="Return thought summaries with the answer.",
        reasoning=True,
    ),
    MappingOption(
        name="safety_settings",
        label="Safety settings",
        path="safetySettings",
        to_request=safety_settings,
        help_text="Blocking threshold per harm category; unset categories keep Google's default.",
        keys=SAFETY_CATEGORIES,
        choices=SAFETY_THRESHOLDS,
        key_label=category_label,
    ),
)


# Per-model refusals the catalog has no field for (Google's thinking docs and API answers,
# ../shared/PROVIDERS.md): Gemini 2.5 and later answer "Penalty is not enabled for this model"
# to a presence or frequency penalty; thinking levels are Gemini 3's, budgets 2.5's, each 2.5
# model with its own range.
PENALTIES_REFUSED = re.compile(r"gemini-(2\.5|[3-9])|gemini-(flash|flash-lite|pro)-latest")
THINKING_LEVELS_FROM_3 = re.compile(r"gemini-([3-9]|\d\d)")
# Gemini 3 Pro takes low and high, 3.1 Pro all but minimal, the Flash models minimal to high
# (Google's thinking docs); a model not listed may take any level, xhigh included. Gemini 3
# Pro can't turn thinking off.
LEVELS_BY_MODEL = (
    (re.compile(r"gemini-3-pro"), ("low", "high")),
    (re.compile(r"gemini-3\.1-pro"), ("low", "medium", "high")),
    (re.compile(r"gemini-3(\.\d+)?-flash"), ("minimal", "low", "medium", "high")),
)
GEMINI_3_PRO = re.compile(r"gemini-3(\.\d+)?-pro")
BUDGET_RANGES = (
    # (id pattern, lowest budget above 0, highest, whether 0 turns thinking off)
    (re.compile(r"gemini-2\.5-flash-lite"), 512, 24576, True),
    (re.compile(r"gemini-2\.5-flash"), 1, 24576, True),
    (re.compile(r"gemini-2\.5-pro"), 128, 32768, False),
)


def version_rules(
    identifier: str, general: Mapping[str, Any], options: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    if PENALTIES_REFUSED.search(identifier):
        for name in PENALTIES:
            if general.get(name):
                yield name, f"{identifier} has no penalties: leave it empty."
    level = options.get("thinking_level")
    if level is not None and not THINKING_LEVELS_FROM_3.search(identifier):
        yield "thinking_level", "Thinking levels are for Gemini 3 and later: use a budget."
    for pattern, levels in LEVELS_BY_MODEL:
        if level is not None and pattern.search(identifier) and level not in levels:
            yield "thinking_level", f"{identifier} takes the levels {', '.join(levels)}."
            break
    budget = options.get("thinking_budget")
    if budget == 0 and GEMINI_3_PRO.search(identifier):
        yield "thinking_budget", f"{identifier} can't turn thinking off."
    for pattern, lowest, highest, can_turn_off in BUDGET_RANGES:
        if budget is None or budget == -1 or not pattern.search(identifier):
            continue
        if budget == 0 and not can_turn_off:
            yield "thinking_budget", f"{identifier} can't turn thinking off: use -1 or {lowest}+."
        elif budget != 0 and not lowest <= budget <= highest:
            yield "thinking_budget", f"{identifier} takes a budget from {lowest} to {highest}."
        break


def rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    if options.get("thinking_level") is not None and options.get("thinking_budget") is not None:
        yield "thinking_level", "Set either a thinking level (Gemini 3) or a thinking budget."
    if options.get("include_thoughts") and options.get("thinking_budget") == 0:
        yield "include_thoughts", "Thoughts can't be included with thinking off (budget 0)."
    yield from version_rules(general.get("identifier") or "", general, options)


GENERATION_CONFIG = (
    ("max_output_tokens", "maxOutputTokens"),
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)
ROLES = {"user": "user", "assistant": "model"}
# The official SDK's (google-genai 3.6) default API version.
API_VERSION = "v1"
# finishReason (the SDK's FinishReason): why a candidate ended. Safety, recitation and
# blocklist checks block it; anything unlisted is the provider's own reason. STOP ends an
# answer that calls tools too (the client's API tells it by its calls);
# MALFORMED_FUNCTION_CALL is an error (parse_stream).
FINISH_REASONS = {
    "STOP": StopReason.COMPLETE,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.BLOCKED,
    "RECITATION": StopReason.BLOCKED,
    "BLOCKLIST": StopReason.BLOCKED,
    "PROHIBITED_CONTENT": StopReason.BLOCKED,
    "SPII": StopReason.BLOCKED,
    "IMAGE_SAFETY": StopReason.BLOCKED,
    "IMAGE_PROHIBITED_CONTENT": StopReason.BLOCKED,
    "IMAGE_RECITATION": StopReason.BLOCKED,
}


class GoogleClient(ProviderClient):
    def auth_headers(self) -> dict[str, str]:
        # The header form, never ?key=: URLs end up in logs.
        return {"x-goog-api-key": self.connection.api_key}

    def is_rejected(self, status: int, body: str) -> bool:
        # Gemini answers a bad key with 400 and the reason API_KEY_INVALID.
        return super().is_rejected(status, body) or (status == 400 and "API_KEY_INVALID" in body)

    def retry_delay(self, body: str) -> int | None:
        # Gemini's 429 says when in its error's details (google.rpc.RetryInfo: "46s").
        try:
            details = json.loads(body)["error"]["details"]
        except (ValueError, KeyError, TypeError, RecursionError):
            return None
        for detail in details if isinstance(details, list) else []:
            delay = detail.get("retryDelay") if isinstance(detail, dict) else None
            if isinstance(delay, str) and delay.endswith("s"):
                return retry_after_of(delay.removesuffix("s"))
        return None

    def verify_key(self) -> None:
        self.get_json(f"{self.base_url}/{API_VERSION}/models", {"pageSize": 1})

    def fetch_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"pageSize": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/{API_VERSION}/models", params)
            models += [
                RemoteModel(
                    item["name"].removeprefix("models/"),
                    token_count(item, "inputTokenLimit") or None,
                )
                for item in self.items(payload, "models", id_field="name")
                if "generateContent" in (item.get("supportedGenerationMethods") or [])
            ]
            token = payload.get("nextPageToken")
            # A page that points at itself would repeat the list: stop there.
            if not isinstance(token, str) or not token or token == params.get("pageToken"):
                break
            params = {"pageSize": 1000, "pageToken": payload["nextPageToken"]}
        return models

    def chat_body(self, model: ModelSettings, chat: ChatInput) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [
                {"role": ROLES[message["role"]], "parts": [{"text": message["content"]}]}
                for message in chat.messages
            ]
        }
        if chat.system:
            body["systemInstruction"] = system_instruction(chat.system)
        self.set_settings(body, model)
        return body

    def conversation_body(self, model: ModelSettings, conversation: Conversation) -> dict[str, Any]:
        """A translated request's body: the conversation's turns, tools and stop sequences,
        with the settings its values and the admin's make (conversation_settings)."""
        if len(conversation.stop) > MAX_STOP_SEQUENCES:
            raise field_refused(
                conversation.param("stop"),
                f"Gemini takes at most {MAX_STOP_SEQUENCES} stop sequences.",
            )
        settings = conversation_settings(model, conversation)
        body: dict[str, Any] = {"contents": contents(model.identifier, conversation)}
        if conversation.system:
            body["systemInstruction"] = system_instruction(conversation.system)
        if conversation.tools:
            body["tools"] = [{"functionDeclarations": declarations(conversation)}]
        # Gemini calls tools as it likes (AUTO) unless told otherwise; it has no switch for
        # parallel calls, so parallel_tool_calls is advisory here (dropped).
        if conversation.tools and conversation.tool_choice != "auto":
            calling: dict[str, Any] = {"mode": TOOL_MODES[conversation.tool_choice]}
            if conversation.tool_choice == "tool":
                calling["allowedFunctionNames"] = [conversation.tool_name]
            body["toolConfig"] = {"functionCallingConfig": calling}
        self.set_settings(body, settings, conversation.stop)
        return body

    def set_settings(
        self, body: dict[str, Any], model: ModelSettings, stop: tuple[str, ...] = ()
    ) -> None:
        """The model's sampling settings and options, and any stop sequences, in the body."""
        config: dict[str, Any] = {}
        for name, key in GENERATION_CONFIG:
            set_if(config, key, getattr(model, name))
        if model.top_k is not None:
            config["topK"] = float(model.top_k)  # as the SDK types it: 40.0
        if stop:
            config["stopSequences"] = list(stop)
        if config:
            body["generationConfig"] = config
        # An empty safety mapping is Google's defaults: nothing to send.
        safety = model.options.get("safety_settings") or None
        set_options(body, self.options, {**model.options, "safety_settings": safety})

    async def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(
            self.stream_url(model), self.chat_body(model, chat)
        ) as response:
            async for event in parse_stream(response):
                yield event

    async def converse(
        self, model: ModelSettings, conversation: Conversation
    ) -> AsyncIterator[StreamEvent]:
        body = self.conversation_body(model, conversation)
        async with self.open_stream(self.stream_url(model), body) as response:
            async for event in parse_stream(response):
                yield event

    def stream_url(self, model: ModelSettings) -> str:
        return (
            f"{self.base_url}/{API_VERSION}/models/{quote(model.identifier, safe='')}"
            ":streamGenerateContent?alt=sse"
        )


def system_instruction(text: str) -> dict[str, Any]:
    # The SDK sends the system text with the user role.
    return {"role": "user", "parts": [{"text": text}]}


# --- A translated gateway request (contract.Conversation) ----------------------------------
# Fields are spelled as google-genai sends them (the API reads both spellings): the request is
# the SDK's own for the same conversation.

MAX_STOP_SEQUENCES = 5  # the API's limit (GenerationConfig.stopSequences)
# A function's name as Gemini takes it (the SDK's FunctionDeclaration.name).
FUNCTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")
TOOL_MODES = {"any": "ANY", "none": "NONE", "tool": "ANY"}
# The Conversation's field for each of the model's settings a refusal names.
CONVERSATION_FIELDS = {
    "max_output_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# The options that set how much Gemini thinks, which a request's effort replaces.
THINKING_KNOBS = ("thinking_budget", "thinking_level")
LEVELS = ("minimal", "low", "medium", "high", "xhigh")
# Gemini 3's level for an effort: the lowest is minimal (it can't turn thinking off).
EFFORT_LEVELS = {"none": "minimal", "max": "xhigh"}
# Gemini 2.5's budget for an effort below high (high and above: the model's highest).
EFFORT_BUDGETS = {"low": 1024, "medium": 8192}
# A signed call's id: the signature of Gemini's functionCall part, base64url without padding.
SIGNED_CALL = "call_sig_"
CALL_ID = re.compile(r"[A-Za-z0-9_-]+")
# Google's stand-in for the signature of a call Gemini did not make (a conversation begun on
# another model): Gemini 3 refuses a call of the current turn without one (Google's thought
# signatures docs).
NO_SIGNATURE = "skip_thought_signature_validator"


def conversation_settings(model: ModelSettings, conversation: Conversation) -> ModelSettings:
    """The settings of a translated request: the client's values, max tokens at most the
    answer's ceiling (the admin's cap, else the model's output limit), the thinking its
    effort asks for; the admin's settings where the client set none (but one that the
    client's values make invalid). Checked as the admin's are (GOOGLE.check_model):
    RequestRefused naming the client's field it refuses."""
    asked = {
        name: getattr(conversation, field)
        for name, field in CONVERSATION_FIELDS.items()
        if getattr(conversation, field) is not None
    }
    cap = GOOGLE.answer_ceiling(model)
    if cap and asked.get("max_output_tokens", 0) > cap:
        asked["max_output_tokens"] = cap
    options = dict(model.options)
    if conversation.effort is not None:
        asked |= effort_options(model.identifier, conversation.effort, conversation)
        options = {name: value for name, value in options.items() if name not in THINKING_KNOBS}
    defaults = [(name, getattr(model, name)) for name in GENERAL_FIELDS]
    defaults += list(options.items())
    values, refused = with_defaults(
        asked,
        [(name, value) for name, value in defaults if value is not None and name not in asked],
        partial(settings_refusals, model.identifier),
    )
    if refused:
        name, message = next(iter(refused.items()))
        # The only options a client's request sets are those of its effort.
        field = CONVERSATION_FIELDS.get(name, "effort")
        raise field_refused(conversation.param(field), message)
    return ModelSettings(
        model.identifier,
        **{name: values.get(name) for name in GENERAL_FIELDS},
        options={name: value for name, value in values.items() if name not in GENERAL_FIELDS},
    )


def settings_refusals(identifier: str, values: Mapping[str, Any]) -> dict[str, str]:
    """What the type's checks, the catalog and the rules refuse of these settings: a message
    by setting (general field or option name)."""
    general = {name: value for name, value in values.items() if name in GENERAL_FIELDS}
    options = {name: value for name, value in values.items() if name not in GENERAL_FIELDS}
    _, errors = GOOGLE.check_model({"identifier": identifier, **general}, options)
    return {name: messages[0] for name, messages in errors.items()}


def effort_options(identifier: str, effort: Effort, conversation: Conversation) -> dict[str, Any]:
    """The thinking option (as stored) for a request's effort: Gemini 3's level, the nearest
    the model takes at or above it; Gemini 2.5's budget, 0 for none or minimal (the model's
    lowest where it can't turn thinking off), the model's highest for high and above (-1,
    the model's choice, where its range is not known). A model that doesn't think takes
    none (no option) and an Anthropic client's thinking (advice: dropped), and refuses any
    other effort."""
    facts = GOOGLE.facts(identifier)
    if facts and not facts.reasoning:
        if effort == "none" or conversation.effort_advisory:
            return {}
        raise field_refused(conversation.param("effort"), f"{identifier} doesn't think.")
    if THINKING_LEVELS_FROM_3.search(identifier):
        wanted = LEVELS.index(EFFORT_LEVELS.get(effort, effort))
        taken = next(
            (levels for pattern, levels in LEVELS_BY_MODEL if pattern.search(identifier)), LEVELS
        )
        level = next((each for each in taken if LEVELS.index(each) >= wanted), taken[-1])
        return {"thinking_level": level}
    lowest, highest, can_turn_off = next(
        (range_[1:] for range_ in BUDGET_RANGES if range_[0].search(identifier)), (1, -1, True)
    )
    if effort in ("none", "minimal"):
        return {"thinking_budget": 0 if can_turn_off else lowest}
    return {"thinking_budget": EFFORT_BUDGETS.get(effort, highest)}


def contents(identifier: str, conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation's turns as Gemini's contents; turns of one role in a row are one
    (all the tool results answering one model turn must be in the next)."""
    turns: list[dict[str, Any]] = []
    signed = bool(THINKING_LEVELS_FROM_3.search(identifier))
    for message in conversation.messages:
        if message.role == "user":
            parts = user_parts(message, conversation)
        else:
            parts = model_parts(message, conversation, signed)
        role = ROLES[message.role]
        if turns and turns[-1]["role"] == role:
            turns[-1]["parts"] += parts
        elif parts:
            turns.append({"role": role, "parts": parts})
    return turns


def user_parts(message: Message, conversation: Conversation) -> list[dict[str, Any]]:
    """A user turn's parts: its tool results first, as functionResponse parts (the images of
    a result after them: a functionResponse holds no image), then its text and images."""
    results, rest = [], []
    for part in message.parts:
        if isinstance(part, ToolResult):
            text = "\n".join(item for item in part.content if isinstance(item, str))
            outcome = "error" if part.is_error else "output"
            results.append({"functionResponse": {"name": part.name, "response": {outcome: text}}})
            rest += [
                inline_data(item, conversation) for item in part.content if isinstance(item, Image)
            ]
        elif isinstance(part, Image):
            rest.append(inline_data(part, conversation))
        elif isinstance(part, str) and part:
            rest.append({"text": part})
    return results + rest


def inline_data(image: Image, conversation: Conversation) -> dict[str, Any]:
    if image.url:
        # Gemini fetches no URL but its own file store's.
        raise field_refused(
            conversation.param("messages"), "Gemini takes images as data, not by URL."
        )
    return {"inlineData": {"data": image.data, "mime_type": image.media_type}}


def model_parts(message: Message, conversation: Conversation, signed: bool) -> list[dict[str, Any]]:
    """A model turn's parts: its text and its tool calls, each call with the signature its id
    carries; where `signed` (Gemini 3) the turn's first call without one gets Google's
    stand-in. Thinking is dropped: what another family signed, Gemini can't read back."""
    parts: list[dict[str, Any]] = []
    first_call = True
    for part in message.parts:
        if isinstance(part, str) and part:
            parts.append({"text": part})
        elif isinstance(part, ToolCall):
            call: dict[str, Any] = {
                "functionCall": {
                    "name": part.name,
                    "args": tool_arguments(part.arguments, conversation.param("messages")),
                }
            }
            signature = call_signature(part.id) or (NO_SIGNATURE if signed and first_call else "")
            if signature:
                call["thoughtSignature"] = signature
            parts.append(call)
            first_call = False
    return parts


def declarations(conversation: Conversation) -> list[dict[str, Any]]:
    """The tools as function declarations; their JSON Schema sent as is."""
    found = []
    for tool in conversation.tools:
        if not FUNCTION_NAME.fullmatch(tool.name):
            raise field_refused(
                conversation.param("tools"),
                "Gemini takes tool names of letters, digits, _ . : and -, starting with a "
                "letter or _, at most 128 characters.",
            )
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        if tool.parameters:
            declaration["parameters_json_schema"] = dict(tool.parameters)
        found.append(declaration)
    return found


def call_id(own: Any, signature: Any) -> str:
    """A call's id for the client: its signature where Gemini signed it (sent back with the
    call, it needs no store), else Gemini's own id where it gave one we can pass on, else
    ours."""
    signed = signature_bytes(signature) if isinstance(signature, str) else None
    if signed:
        return SIGNED_CALL + base64.urlsafe_b64encode(signed).rstrip(b"=").decode()
    if isinstance(own, str) and CALL_ID.fullmatch(own):
        return own
    return f"call_{uuid.uuid4().hex}"


def call_signature(call_id: str) -> str:
    """The signature a call's id carries (call_id), in base64 as google-genai sends it
    (base64url, padded); empty where none."""
    signed = signature_bytes(call_id.removeprefix(SIGNED_CALL))
    if not call_id.startswith(SIGNED_CALL) or not signed:
        return ""
    return base64.urlsafe_b64encode(signed).decode()


def signature_bytes(text: str) -> bytes | None:
    """A signature's bytes from its base64, in either alphabet (a bytes field's JSON takes
    both), padded or not; None where it is no base64."""
    text = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def tool_call(index: int, part: Mapping[str, Any]) -> list[StreamEvent]:
    """A functionCall part's events: the call, then its arguments whole."""
    call = part["functionCall"]
    name, args = call.get("name"), call.get("args", {})
    if not isinstance(name, str) or not name or not isinstance(args, dict):
        raise malformed()
    return [
        ToolCallStart(
            index=index, id=call_id(call.get("id"), part.get("thoughtSignature")), name=name
        ),
        ToolCallDelta(index=index, text=json.dumps(args, ensure_ascii=False)),
    ]


async def parse_stream(response: httpx2.Response) -> AsyncIterator[StreamEvent]:
    usage, stop_reason = None, None
    calls = 0
    async for _, data in sse_events(response):
        chunk = json_data(data)
        if "error" in chunk:
            raise mid_stream_error(error_kind(chunk["error"]))
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, dict):
            # Thinking tokens are not part of candidatesTokenCount but are output all the same;
            # promptTokenCount holds the cached tokens. Gemini reports no cache writes.
            usage = Usage(
                token_count(metadata, "promptTokenCount"),
                token_total(metadata, "candidatesTokenCount", "thoughtsTokenCount"),
                cache_read_tokens=reported(metadata, "cachedContentTokenCount"),
                reasoning_tokens=reported(metadata, "thoughtsTokenCount"),
            )
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            # A blocked prompt gets no candidates: the answer ends here.
            stop_reason = StopReason.BLOCKED
            break
        candidates = chunk.get("candidates")
        for candidate in candidates if isinstance(candidates, list) else []:
            if not isinstance(candidate, dict):
                raise malformed()
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            for part in parts if isinstance(parts, list) else []:
                if isinstance(part, dict) and isinstance(part.get("functionCall"), dict):
                    for event in tool_call(calls, part):
                        yield event
                    calls += 1
                    continue
                # A text part's thoughtSignature is not passed on: Gemini asks for signatures
                # back with its calls only, and thinking sent back to it is dropped.
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str) and text:
                    yield ThinkingDelta(text) if part.get("thought") else TextDelta(text)
            reason = candidate.get("finishReason")
            if reason == "MALFORMED_FUNCTION_CALL":
                raise malformed_tool_call()
            if isinstance(reason, str) and reason:
                stop_reason = FINISH_REASONS.get(reason, StopReason.OTHER)
    if stop_reason is None:
        raise cut_off()
    if usage:
        yield usage
    yield Finish(stop_reason)


GOOGLE = ProviderType(
    slug="google",
    key_env_var="GEMINI_API_KEY",
    label="Google (Gemini)",
    default_base_url="https://generativelanguage.googleapis.com",
    base_url_example="https://generativelanguage.googleapis.com",
    region_required=False,
    temperature_max=2,
    general_fields=SAMPLING | PENALTIES | {"top_k"},
    client=GoogleClient,
    options=OPTIONS,
    rules=rules,
    catalog="google",
    seeded_models=("gemini-3.1-pro-preview", "gemini-3.5-flash", "gemini-2.5-pro"),
)
