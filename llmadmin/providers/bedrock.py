"""AWS Bedrock's Converse API: how an account authenticates (a Bedrock API key, IAM access
keys, or the server's own AWS credentials, signed with SigV4 by botocore), Claude's options and
rules from the Anthropic module for Claude models only, Converse's request mapping, and the AWS
event stream read by botocore's parser. For the gateway: Claude's own Messages body through
InvokeModel (its event stream re-framed as Anthropic's SSE) and CountTokens; every other
request translated into ConverseStream (converse).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx2
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer, ParserError
from botocore.exceptions import BotoCoreError
from django.views.decorators.debug import sensitive_variables

from llmadmin.providers import anthropic
from llmadmin.providers.base import (
    SAMPLING,
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
    OtherOutput,
    Part,
    Raw,
    Relay,
    RelayApi,
    RemoteModel,
    StopReason,
    StreamEvent,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallStart,
    ToolResult,
    Usage,
)
from llmadmin.providers.errors import (
    LacksPermission,
    NoCredentials,
    ProviderError,
    RequestRefused,
    cut_off,
    failed_mid_answer,
    field_refused,
    malformed,
    mid_stream_error,
)
from llmadmin.providers.sse import (
    chunks_of,
    json_data,
    reported,
    token_count,
    token_total,
    tool_arguments,
)
from llmadmin.providers.transport import MAX_PAGES, ProviderClient, body_of, set_if

# How a Bedrock account authenticates: the admin's choice.
AUTH_MODES = {
    "api_key": "Bedrock API key",
    "aws_keys": "IAM access key",
    "default_chain": "The server's AWS credentials",
}
# SigV4 signs for this service name, on the runtime and the control plane alike.
SIGNING_NAME = "bedrock"

_session: botocore.session.Session | None = None
_session_lock = threading.Lock()
# When the chain found nothing: not looked for again before this time (time.monotonic()).
_none_until = 0.0
NO_CREDENTIALS_RETRY_SECONDS = 60


def server_credentials() -> Credentials | None:
    """botocore's default credential chain: environment, shared config or profile, container
    or instance role, web identity. Resolved once per process; role credentials refresh
    themselves. Finding none is remembered for a minute: the chain is slow to say so."""
    global _session, _none_until
    with _session_lock:
        if time.monotonic() < _none_until:
            return None
        if _session is None:
            _session = botocore.session.Session()
        credentials = _session.get_credentials()
        if credentials is None:
            _none_until = time.monotonic() + NO_CREDENTIALS_RETRY_SECONDS
        return credentials


def is_claude(identifier: str) -> bool:
    """Claude's model ids and their inference profiles (`us.anthropic.…`, or an ARN)."""
    return bool(re.match(r"(?:[a-z-]+\.)?anthropic\.", identifier.rsplit("/", 1)[-1]))


def is_nova(identifier: str) -> bool:
    """Amazon Nova's model ids and their inference profiles (`us.amazon.nova-…`, or an ARN)."""
    return bool(re.match(r"(?:[a-z-]+\.)?amazon\.nova-", identifier.rsplit("/", 1)[-1]))


# Claude's options, as Bedrock takes them (rules() keeps them to Claude models): thinking in
# additionalModelRequestFields, in Anthropic's shape; effort in Converse's own field
# (botocore's bedrock-runtime model: outputConfig.effort).
OPTIONS = (
    replace(anthropic.THINKING, path="additionalModelRequestFields.thinking.type"),
    replace(
        anthropic.THINKING_BUDGET_TOKENS,
        path="additionalModelRequestFields.thinking.budget_tokens",
    ),
    replace(anthropic.EFFORT, path="outputConfig.effort"),
)


def rules(
    general: Mapping[str, Any], options: Mapping[str, Any], facts: ModelFacts | None
) -> Iterator[tuple[str, str]]:
    # Thinking, effort and top K are Claude's own fields: other families (Nova, Llama,
    # Mistral…) take Converse's general fields only, and Nova its own top K.
    if is_claude(general.get("identifier") or ""):
        yield from anthropic.rules(general, options, facts)
        # Converse caps effort at high while thinking is off (botocore's bedrock-runtime
        # model, OutputConfig.effort); the Anthropic API has no such cap.
        thinking_on = anthropic.thinking_mode(options) in ("enabled", "adaptive")
        if options.get("effort") in ("xhigh", "max") and not thinking_on:
            yield "effort", "Above high, Bedrock needs thinking on: set Thinking, or lower it."
        return
    for option in OPTIONS:
        if options.get(option.name) is not None:
            yield option.name, "Only Claude models on Bedrock take this option."
    if general.get("top_k") is not None and not is_nova(general.get("identifier") or ""):
        yield "top_k", "Only Claude and Nova models on Bedrock take top K."


class BedrockClient(ProviderClient):
    """Chat on the runtime host, model lists on the control plane; a Bedrock API key as a
    Bearer token, or SigV4 signatures from IAM access keys or the server's credentials."""

    # The server's credential chain may call AWS's metadata service.
    signs_in_thread = True

    def has_credentials(self) -> bool:
        connection = self.connection
        if connection.auth == "aws_keys":
            return bool(connection.aws_access_key_id and connection.aws_secret_access_key)
        return connection.auth == "default_chain" or bool(connection.api_key)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.connection.api_key}"}

    def secrets(self) -> list[str]:
        if self.connection.auth != "default_chain":
            return super().secrets()
        credentials = self.aws_credentials()  # the server's own: they travel all the same
        return [credentials.access_key, credentials.secret_key, credentials.token or ""]

    @sensitive_variables("credentials", "request")
    def authorize(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> dict[str, str]:
        if self.connection.auth == "api_key":
            return super().authorize(method, url, headers, body)
        credentials = self.aws_credentials()
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(credentials, SIGNING_NAME, self.connection.region).add_auth(request)
        return dict(request.headers.items())

    def aws_credentials(self) -> Credentials:
        connection = self.connection
        if connection.auth == "aws_keys":
            return Credentials(
                connection.aws_access_key_id,
                connection.aws_secret_access_key,
                connection.aws_session_token or None,
            )
        try:
            credentials = server_credentials()
        except BotoCoreError:  # a profile that doesn't exist, half a key pair…
            raise NoCredentials("The server's AWS credentials could not be loaded.") from None
        if credentials is None:
            raise NoCredentials(
                "The server has no AWS credentials (environment, shared config, or a "
                "container or instance role)."
            )
        return credentials.get_frozen_credentials()

    def refusal(
        self, method: str, status: int, body: str, headers: Mapping[str, str]
    ) -> ProviderError | None:
        # AWS answers a signature or key it doesn't accept with 403 (InvalidSignature,
        # UnrecognizedClient), and a call the credentials may not make with 403
        # AccessDeniedException, named in x-amzn-ErrorType.
        error_type = headers.get("x-amzn-ErrorType", "")
        if status == 403 and error_type.startswith("AccessDeniedException"):
            if method == "GET":
                return LacksPermission(
                    "The credentials lack permission to list models (403): allow "
                    "bedrock:ListFoundationModels and bedrock:ListInferenceProfiles."
                )
            return LacksPermission(
                "The credentials lack permission to call this model (403): allow "
                "bedrock:InvokeModelWithResponseStream."
            )
        return super().refusal(method, status, body, headers)

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
        self.get_json(f"{self.control_url}/foundation-models", FOUNDATION_MODEL_FILTER)

    def fetch_models(self) -> list[RemoteModel]:
        foundation = self.get_json(f"{self.control_url}/foundation-models", FOUNDATION_MODEL_FILTER)
        # Models called by their own id: text output, on demand. Profile-only models are
        # offered through their inference profiles below.
        models = [
            RemoteModel(item["modelId"])
            for item in self.items(foundation, "modelSummaries", id_field="modelId")
            if "TEXT" in (item.get("outputModalities") or [])
            and "ON_DEMAND" in (item.get("inferenceTypesSupported") or [])
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
        set_options(body, self.options, anthropic.sent_options(model.options))
        # Claude's top K travels in additionalModelRequestFields, in Anthropic's shape (rules()
        # keeps it to Claude and Nova); Nova reads its top K from an inferenceConfig there
        # (AWS's Nova user guide, "Core inference": "reasoningConfig and TopK ... are placed
        # within an additional inferenceConfig object within the additionalModelRequestFields").
        if model.top_k is not None:
            additional = body.setdefault("additionalModelRequestFields", {})
            if is_nova(model.identifier):
                additional["inferenceConfig"] = {"topK": model.top_k}
            else:
                additional["top_k"] = model.top_k
        return body

    async def stream(self, model: ModelSettings, chat: ChatInput) -> AsyncIterator[StreamEvent]:
        async with self.open_stream(
            self.converse_url(model), self.chat_body(model, chat)
        ) as response:
            async for event in parse_stream(response):
                yield event

    def converse_url(self, model: ModelSettings) -> str:
        return f"{self.base_url}/model/{quote(model.identifier, safe='')}/converse-stream"

    def converse_body(self, model: ModelSettings, conversation: Conversation) -> dict[str, Any]:
        """ConverseStream's body for a gateway client's Conversation: chat_body's settings,
        made of the client's values over the admin's (conversation_settings), and the
        conversation's messages, stop sequences and tools."""
        settings = conversation_settings(model, conversation)
        body = self.chat_body(settings, ChatInput(conversation.system, []))
        body["messages"] = converse_messages(conversation, is_claude(model.identifier))
        # Converse's stop sequences are NonEmptyString (botocore's bedrock-runtime model).
        if "" in conversation.stop:
            raise field_refused(
                conversation.param("stop"), "Bedrock takes stop sequences that are not empty."
            )
        if conversation.stop:
            body.setdefault("inferenceConfig", {})["stopSequences"] = list(conversation.stop)
        set_if(body, "toolConfig", tool_config(conversation))
        return body

    async def converse(
        self, model: ModelSettings, conversation: Conversation
    ) -> AsyncIterator[StreamEvent]:
        # Built before anything is sent: a refusal costs nothing.
        body = self.converse_body(model, conversation)
        async with self.open_stream(self.converse_url(model), body) as response:
            async for event in parse_stream(response):
                yield event

    def speaks(self, api: RelayApi, identifier: str) -> bool:
        # InvokeModel takes Anthropic's Messages body for Claude only.
        return api in (RelayApi.MESSAGES, RelayApi.COUNT_TOKENS) and is_claude(identifier)

    def relay(self, model: ModelSettings, request: Relay) -> AsyncIterator[StreamEvent]:
        if request.api is RelayApi.COUNT_TOKENS:
            return self.relay_count(model, request)
        return self.relay_messages(model, request)

    def claude_url(self, model: ModelSettings, action: str) -> str:
        """The URL of an action on this Claude model; RequestRefused for any other model."""
        if not is_claude(model.identifier):
            raise RequestRefused(
                "Only Claude models on Bedrock take Anthropic's Messages API: this one does not."
            )
        return f"{self.base_url}/model/{quote(model.identifier, safe='')}/{action}"

    async def relay_messages(
        self, model: ModelSettings, request: Relay
    ) -> AsyncIterator[StreamEvent]:
        """InvokeModel(WithResponseStream): Claude's own Messages body, its events framed as
        Anthropic's SSE for the client."""
        action = "invoke-with-response-stream" if request.streamed else "invoke"
        url = self.claude_url(model, action)
        body = invoke_body(anthropic.relay_body(model, request.body), request)
        async with self.open_stream(url, body, stream=request.streamed) as response:
            if request.streamed:
                async for event in anthropic.relay_stream(claude_events(response)):
                    yield event
                return
            answer = await body_of(response)
        for event in anthropic.message_events(json_data(answer)):
            yield event
        yield Raw(answer)

    async def relay_count(self, model: ModelSettings, request: Relay) -> AsyncIterator[StreamEvent]:
        """CountTokens of the InvokeModel body, answered as Anthropic's count_tokens."""
        url = self.claude_url(model, "count-tokens")
        # InvokeModel's Claude body requires max_tokens, which count_tokens' has not.
        invoke = invoke_body({"max_tokens": anthropic.DEFAULT_MAX_TOKENS, **request.body}, request)
        # A blob member, base64 in the JSON body (botocore's rest-json serializer).
        encoded = base64.b64encode(json.dumps(invoke).encode()).decode()
        body = {"input": {"invokeModel": {"body": encoded}}}
        async with self.open_stream(url, body, stream=False) as response:
            count = json_data(await body_of(response)).get("inputTokens")
        if not anthropic.is_whole(count):
            raise malformed()
        yield Raw(json.dumps({"input_tokens": count}).encode())


# --- A gateway client's Conversation as ConverseStream's body ------------------------------

# Converse's tool ids and names (botocore's bedrock-runtime model: ToolUseId, ToolName).
TOOL_USE_ID = re.compile(r"[a-zA-Z0-9_.:-]{1,64}")
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
# Converse's image formats (ImageFormat), by the media type a client names.
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}
# The sampling fields a Conversation and ModelSettings both name.
CONVERSATION_SAMPLING = ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty")
# The Conversation's field behind each setting the type's rules may refuse.
CONVERSATION_FIELDS = {
    "max_output_tokens": "max_tokens",
    "thinking": "effort",
    "thinking_budget_tokens": "effort",
}


def client_effort(identifier: str, conversation: Conversation) -> Effort | None:
    """The effort to map onto Claude's thinking. Bedrock's other models get none: we send
    them no thinking knob, so any effort but none is refused, except an Anthropic client's
    thinking, which is advisory there (dropped)."""
    effort = conversation.effort
    if is_claude(identifier):
        return effort
    if effort not in (None, "none") and not conversation.effort_advisory:
        raise field_refused(
            conversation.param("effort"),
            "This model takes no reasoning effort: leave it out, or ask none.",
        )
    return None


def conversation_settings(model: ModelSettings, conversation: Conversation) -> ModelSettings:
    """The model's settings for a translated request: the client's sampling values, the
    admin's where it set none (but those the client's values make invalid); max tokens as
    answer_tokens says; Claude's options as anthropic.conversation_options says, the admin's
    as defaults where the client asked no effort. RequestRefused naming the client's field
    where the type's rules refuse the result."""
    identifier = model.identifier
    effort = client_effort(identifier, conversation)
    options = anthropic.conversation_options(
        identifier, replace(conversation, effort=effort), model.options
    )
    budget = anthropic.sent_options(options)["thinking_budget_tokens"]
    asked = {name: getattr(conversation, name) for name in CONVERSATION_SAMPLING}
    settings = {
        "max_output_tokens": answer_tokens(model, conversation, budget),
        **asked,
        "options": options if effort is not None else {},
    }
    defaults = [
        (name, getattr(model, name))
        for name, value in asked.items()
        if value is None and getattr(model, name) is not None
    ]
    if effort is None and options:
        defaults.append(("options", options))
    settings, refused = with_defaults(settings, defaults, partial(settings_refusals, identifier))
    if refused:
        name, message = next(iter(refused.items()))
        field = CONVERSATION_FIELDS.get(name, name)
        raise field_refused(conversation.param(field), message)
    return replace(model, **settings)


def answer_tokens(
    model: ModelSettings, conversation: Conversation, budget: int | None
) -> int | None:
    """Max tokens of a translated request: the client's, lowered to the admin's cap (else the
    catalog's output limit); the admin's where it asked none; raised for a thinking budget
    as anthropic.thinking_room says."""
    cap = BEDROCK.answer_ceiling(model)
    max_tokens = conversation.max_tokens
    if max_tokens is None:
        max_tokens = model.max_output_tokens
    elif cap is not None:
        max_tokens = min(max_tokens, cap)
    return anthropic.thinking_room(max_tokens, budget, conversation, cap)


def settings_refusals(identifier: str, settings: Mapping[str, Any]) -> dict[str, str]:
    """What the type's checks, the catalog's facts and the rules refuse of these settings: a
    message by setting (a general field's name, or an option's). The cap is ours to apply
    (conversation_settings), not the catalog's to refuse."""
    general = {name: value for name, value in settings.items() if name != "options"}
    general |= {"identifier": identifier, "override_catalog_limit": True}
    _, errors = BEDROCK.check_model(general, settings["options"])
    return {name: messages[0] for name, messages in errors.items()}


def converse_messages(conversation: Conversation, claude: bool) -> list[dict[str, Any]]:
    """The conversation's turns as Converse's messages; a turn left with no content (its
    thinking dropped) is left out, and the turns around it joined where they are the same
    role's. Refused where they don't begin with the user's (Converse refuses that)."""
    messages: list[dict[str, Any]] = []
    for message in conversation.messages:
        content = [
            block
            for part in message.parts
            if (block := content_block(part, conversation, claude)) is not None
        ]
        if not content:
            continue
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"] += content
        else:
            messages.append({"role": message.role, "content": content})
    if not messages or messages[0]["role"] != "user":
        raise field_refused(
            conversation.param("messages"),
            "Bedrock takes a conversation that begins with a user's message.",
        )
    return messages


def content_block(part: Part, conversation: Conversation, claude: bool) -> dict[str, Any] | None:
    """One part as a ContentBlock; None for what is not sent: blank text (Converse refuses
    it), and thinking but Claude's own, signed (a signature is only good at its provider;
    Bedrock's other models take no thinking back)."""
    match part:
        case str():
            return {"text": part} if part.strip() else None
        case Image():
            return {"image": image_block(part, conversation)}
        case Thinking(text=text, signature=signature):
            if not (claude and signature):
                return None
            return {"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}
        case ToolCall():
            return {
                "toolUse": {
                    "toolUseId": tool_use_id(part.id, conversation),
                    "name": tool_name(part.name, conversation.param("messages")),
                    "input": tool_arguments(part.arguments, conversation.param("messages")),
                }
            }
        case ToolResult():
            result: dict[str, Any] = {
                "toolUseId": tool_use_id(part.call_id, conversation),
                "content": [
                    {"image": image_block(item, conversation)}
                    if isinstance(item, Image)
                    else {"text": item}
                    for item in part.content
                    if isinstance(item, Image) or item.strip()
                ],
            }
            if part.is_error:
                result["status"] = "error"
            return {"toolResult": result}
    raise TypeError(f"Not a part of a message: {type(part).__name__}")


def image_block(image: Image, conversation: Conversation) -> dict[str, Any]:
    """Converse's image: its bytes (base64 in the JSON body) and format; no URLs."""
    if image.url:
        raise field_refused(
            conversation.param("messages"),
            "Bedrock takes an image's data, not its URL: send the image itself (base64).",
        )
    image_format = IMAGE_FORMATS.get(image.media_type)
    if image_format is None:
        raise field_refused(
            conversation.param("messages"), "Bedrock takes PNG, JPEG, GIF and WebP images only."
        )
    return {"format": image_format, "source": {"bytes": image.data}}


def tool_use_id(identifier: str, conversation: Conversation) -> str:
    if not TOOL_USE_ID.fullmatch(identifier):
        raise field_refused(
            conversation.param("messages"),
            "A tool call's id Bedrock can't take: letters, digits, _ . : - and at most 64 "
            "characters.",
        )
    return identifier


def tool_name(name: str, param: str) -> str:
    if not TOOL_NAME.fullmatch(name):
        raise field_refused(
            param,
            "A tool's name Bedrock can't take: letters, digits, _ - and at most 64 characters.",
        )
    return name


def tool_config(conversation: Conversation) -> dict[str, Any] | None:
    """Converse's toolConfig, None where no tools are offered. Converse has no tool choice
    "none" and needs the tools wherever the messages hold tool calls or results: "none" is
    met by leaving the tools out, which such a conversation can't do (refused)."""
    holds_tools = any(
        isinstance(part, ToolCall | ToolResult)
        for message in conversation.messages
        for part in message.parts
    )
    if conversation.tool_choice == "none" and holds_tools:
        raise field_refused(
            conversation.param("tool_choice"),
            "Bedrock can't forbid tool calls in a conversation that holds some: ask auto.",
        )
    if not conversation.tools and holds_tools:
        raise field_refused(
            conversation.param("tools"),
            "Bedrock needs the tools of this conversation's tool calls: send them.",
        )
    if conversation.tool_choice == "none" or not conversation.tools:
        return None
    config: dict[str, Any] = {
        "tools": [tool_spec(tool, conversation) for tool in conversation.tools]
    }
    # Auto is Converse's default, and the only choice some of its models take (AWS's
    # ToolChoice: any and tool are for Claude, Mistral Large and Nova).
    if conversation.tool_choice == "any":
        config["toolChoice"] = {"any": {}}
    elif conversation.tool_choice == "tool":
        config["toolChoice"] = {"tool": {"name": conversation.tool_name}}
    return config


def tool_spec(tool: Tool, conversation: Conversation) -> dict[str, Any]:
    name = tool_name(tool.name, conversation.param("tools"))
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": dict(tool.parameters)}}
    set_if(spec, "description", tool.description or None)
    return {"toolSpec": spec}


# What InvokeModel's Claude body names instead of the anthropic-version header (AWS's
# Claude Messages API page for Bedrock).
INVOKE_ANTHROPIC_VERSION = "bedrock-2023-05-31"


def invoke_body(body: Mapping[str, Any], request: Relay) -> dict[str, Any]:
    """A Messages body as InvokeModel takes it for Claude: the model is in the URL and the
    action says whether it streams; the API version and the client's anthropic-beta (a list
    there) in the body."""
    sent = {name: value for name, value in body.items() if name not in ("model", "stream")}
    sent["anthropic_version"] = INVOKE_ANTHROPIC_VERSION
    betas = [beta.strip() for beta in request.headers.get("anthropic-beta", "").split(",")]
    if any(betas):
        sent["anthropic_beta"] = [beta for beta in betas if beta]
    return sent


async def claude_events(response: httpx2.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of Claude's Messages events in InvokeModelWithResponseStream: each
    `chunk` carries one event's JSON as base64 `bytes`, its name in its `type`."""
    async for headers, payload in event_stream(response):
        if exception := stream_exception(headers):
            raise exception
        if headers.get(":event-type") != "chunk":
            continue
        try:
            data = base64.b64decode(json_data(payload).get("bytes"), validate=True).decode()
        except (TypeError, ValueError):
            raise malformed() from None
        kind = json_data(data).get("type")
        if not isinstance(kind, str) or not EVENT_NAME.fullmatch(kind):
            raise malformed()
        yield kind, data


EVENT_NAME = re.compile(r"[a-z_]{1,64}")


# ListFoundationModels' own filter: models that answer with text.
FOUNDATION_MODEL_FILTER = {"byOutputModality": "TEXT"}

# Exception types of the Converse stream, by what they mean to the user.
THROTTLED = ("throttlingException",)
OVERLOADED = ("serviceUnavailableException", "modelNotReadyException")


# messageStop's stopReason (botocore's bedrock-runtime model); end_turn, tool_use and
# stop_sequence end a complete answer.
STOP_REASONS = {
    "end_turn": StopReason.COMPLETE,
    "tool_use": StopReason.COMPLETE,
    "stop_sequence": StopReason.COMPLETE,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.CONTEXT_FULL,
    "guardrail_intervened": StopReason.BLOCKED,
    "content_filtered": StopReason.CONTENT_FILTER,
}


# The model wrote something Converse could not read: an error, not an answer.
MALFORMED_OUTPUT = ("malformed_model_output", "malformed_tool_use")


async def parse_stream(response: httpx2.Response) -> AsyncIterator[StreamEvent]:
    stopped, usage, malformed_output = None, None, False
    # The index of each toolUse block's tool call, by the block's index in the content.
    tool_calls: dict[int, int] = {}
    async for headers, payload in event_stream(response):
        if exception := stream_exception(headers):
            raise exception
        event = json_data(payload)
        kind = headers.get(":event-type")
        block = event.get("contentBlockIndex")
        if kind == "contentBlockStart":
            start = event.get("start")
            tool = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(tool, dict):
                call = tool_call_start(tool, len(tool_calls))
                if not anthropic.is_whole(block) or block in tool_calls:
                    raise malformed()
                tool_calls[block] = call.index
                yield call
        elif kind == "contentBlockDelta" and isinstance(event.get("delta"), dict):
            delta = event["delta"]
            text = delta.get("text")
            if isinstance(text, str) and text:
                yield TextDelta(text)
            elif isinstance(delta.get("toolUse"), dict):
                fragment = delta["toolUse"].get("input")
                call = tool_calls.get(block) if anthropic.is_whole(block) else None
                if not isinstance(fragment, str) or call is None:
                    raise malformed()
                yield ToolCallDelta(fragment, index=call)
            elif isinstance(delta.get("reasoningContent"), dict):
                yield thinking_delta(delta["reasoningContent"])
        elif kind == "messageStop":
            reason = event.get("stopReason")
            stopped = (
                STOP_REASONS.get(reason, StopReason.OTHER)
                if isinstance(reason, str)
                else StopReason.OTHER
            )
            # Read on: the metadata event after it holds the usage the provider bills.
            malformed_output = reason in MALFORMED_OUTPUT
        elif kind == "metadata" and isinstance(event.get("usage"), dict):
            # Everything the model read: inputTokens leaves out cache reads and writes.
            # Converse's TokenUsage has no reasoning count.
            counts = event["usage"]
            usage = Usage(
                token_total(counts, "inputTokens", "cacheReadInputTokens", "cacheWriteInputTokens"),
                token_count(counts, "outputTokens"),
                cache_read_tokens=reported(counts, "cacheReadInputTokens"),
                cache_write_tokens=reported(counts, "cacheWriteInputTokens"),
            )
    if stopped is None:
        raise cut_off()
    if usage:
        yield usage
    if malformed_output:
        raise failed_mid_answer()
    yield Finish(stopped)


def tool_call_start(tool: Mapping[str, Any], index: int) -> ToolCallStart:
    """A toolUse block's start; its id and name as Converse's own shapes allow, else the
    answer is malformed."""
    identifier, name = tool.get("toolUseId"), tool.get("name")
    if not (
        isinstance(identifier, str)
        and TOOL_USE_ID.fullmatch(identifier)
        and isinstance(name, str)
        and TOOL_NAME.fullmatch(name)
    ):
        raise malformed()
    return ToolCallStart(index=index, id=identifier, name=name)


def thinking_delta(reasoning: Mapping[str, Any]) -> OtherOutput:
    """A reasoningContent delta: its text or its signature; redacted content is progress."""
    text, signature = reasoning.get("text"), reasoning.get("signature")
    if isinstance(text, str) and text:
        return ThinkingDelta(text)
    if isinstance(signature, str) and signature:
        return ThinkingDelta(signature=signature)
    return OtherOutput()


def stream_exception(headers: Mapping[str, Any]) -> ProviderError | None:
    """Our error for an exception message of the event stream; None for an event."""
    if headers.get(":message-type") not in ("exception", "error"):
        return None
    kind = str(headers.get(":exception-type", ""))
    return mid_stream_error(
        "rate_limit" if kind in THROTTLED else "overloaded" if kind in OVERLOADED else ""
    )


async def event_stream(response: httpx2.Response) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
    """(headers, payload) of each message of AWS's binary event stream, checked by botocore.

    A message left incomplete ends the stream: parse_stream then finds no messageStop.
    """
    buffer = EventStreamBuffer()
    try:
        async for chunk in chunks_of(response):
            buffer.add_data(chunk)
            for message in buffer:
                yield message.headers, message.payload
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
    options=OPTIONS,
    rules=rules,
    auth_modes=AUTH_MODES,
    catalog="amazon-bedrock",
    seeded_models=(
        "us.anthropic.claude-sonnet-4-6",
        "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
)
