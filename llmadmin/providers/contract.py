"""What a provider client is given and gives back: the account's settings, listed models (and
which listed ids are fit to show), a chat turn's input and the events of its answer. No HTTP,
no database rows."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol

from django.views.decorators.debug import sensitive_variables


@dataclass(frozen=True)
class Connection:
    """Where and how to reach one provider account: plain settings, no database rows."""

    # Never in a repr: error reports and logs show reprs.
    api_key: str = field(default="", repr=False)
    base_url: str = ""
    region: str = ""
    # The admin's own base URL, when set (a proxy), else empty.
    base_url_override: str = ""
    # How the account authenticates, one of its type's auth modes; AWS access keys for "aws_keys".
    auth: str = "api_key"
    aws_access_key_id: str = field(default="", repr=False)
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class RemoteModel:
    identifier: str
    context_limit: int | None = None


# What a listed model id may be before a page shows it: every id models.dev lists for our
# provider types fits (OpenRouter's `vendor/model:free` and `~vendor/alias`, Bedrock's
# inference profiles and ARNs, Gemini's `models/…` stripped), as do Azure deployment names;
# at most as long as LLMModel.identifier.
LISTED_MODEL_ID = re.compile(r"[A-Za-z0-9._:/@+~-]{1,200}")


# A listed id sharing this many characters in a row with a credential is left out: a provider
# may list the key it was sent, whole or in pieces across several ids.
SECRET_RUN = 8


@sensitive_variables("secrets", "pieces")
def showable_models(
    models: list[RemoteModel], *, secrets: Iterable[str]
) -> tuple[list[RemoteModel], int]:
    """The listed models whose ids are plausible model ids holding no piece of the account's
    credentials, and how many were left out."""
    pieces = {
        secret[start : start + SECRET_RUN]
        for secret in secrets
        if secret
        for start in range(max(len(secret) - SECRET_RUN, 0) + 1)
    }
    kept = [
        model
        for model in models
        if LISTED_MODEL_ID.fullmatch(model.identifier)
        and not any(piece in model.identifier for piece in pieces)
    ]
    return kept, len(models) - len(kept)


@dataclass(frozen=True)
class ChatInput:
    """What a chat turn sends: a summary of older messages, then the recent messages."""

    system: str
    messages: list[dict[str, str]]  # {"role": "user" | "assistant", "content": ...}


class RelayApi(StrEnum):
    """The provider APIs a gateway client calls in their own shape."""

    CHAT_COMPLETIONS = "chat_completions"
    RESPONSES = "responses"
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"


@dataclass(frozen=True)
class Relay:
    """A gateway client's request in the provider's own API: passed on as the client sent it
    but for the model and what the admin's model settings decide (the family's relay_body)."""

    api: RelayApi
    # The client's JSON body, as parsed; never changed (the family builds a new one).
    body: Mapping[str, Any]
    # The client's headers a family passes on (anthropic-version, anthropic-beta), lower-case.
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def streamed(self) -> bool:
        return self.body.get("stream") is True


@dataclass(frozen=True)
class Raw:
    """Bytes for a gateway client, in the shape of the API it called: one server-sent event
    of a streamed answer, or a whole JSON answer."""

    data: bytes


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class OtherOutput:
    """Output that is not the answer's text: thinking or reasoning, a tool call's arguments (as
    JSON text), a refusal. The chat neither shows nor stores it, but it is the model's output:
    it holds the answer open against the idle limit, counts into the estimate of a call cut
    short, and is searched for credentials. `text` as decoded from the event's JSON; empty
    for progress that is no output of its own (a thinking signature, a citation)."""

    text: str = ""


@dataclass(frozen=True, kw_only=True)
class ThinkingDelta(OtherOutput):
    """A piece of the model's thinking; `signature`: the provider's seal of a thinking block
    (Anthropic's signature_delta), sent with no text of its own."""

    signature: str = ""


@dataclass(frozen=True, kw_only=True)
class ToolCallStart(OtherOutput):
    """The model begins a call of one of the request's tools: the call's id and the tool's
    name; `index` counts the answer's tool calls from 0. Its arguments follow as deltas."""

    index: int
    id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class ToolCallDelta(OtherOutput):
    """A piece of the JSON text of a tool call's arguments (`text`), by the call's index."""

    index: int


@dataclass(frozen=True)
class Usage:
    """Tokens of a turn; input counts everything the model read, cached tokens included.

    The cache and reasoning counts are parts of those totals, priced apart; None where the
    provider did not report them (or sent a count that could not be read).
    """

    input_tokens: int | None
    output_tokens: int | None
    # Parts of input_tokens: read from, and written to, the provider's prompt cache.
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    # Part of output_tokens: the model's thinking.
    reasoning_tokens: int | None = None


class StopReason(StrEnum):
    """Why an answer ended, in our own words: each family maps its provider's reasons here."""

    COMPLETE = "complete"
    # Truncated at max output tokens.
    MAX_TOKENS = "max_tokens"
    # Truncated because the conversation filled the model's context window.
    CONTEXT_FULL = "context_full"
    # The model declined to answer.
    REFUSED = "refused"
    # A safety check blocked the prompt or the answer.
    BLOCKED = "blocked"
    CONTENT_FILTER = "content_filter"
    # The provider paused a long turn: the answer so far is kept, and a further message lets
    # the model go on (Anthropic's pause_turn).
    PAUSED = "paused"
    # The provider stopped for a reason of its own that none of the above names.
    OTHER = "other"
    # The stream ended before the provider said it was done.
    CUT_OFF = "cut_off"
    # The provider reported an error, or the answer could not be read.
    FAILED = "failed"
    # Ended by us: the answer passed its deadline, or the provider went quiet too long.
    TIMED_OUT = "timed_out"
    # The user went away (closed the page, lost the connection) before the answer ended.
    DISCONNECTED = "disconnected"


@dataclass(frozen=True)
class Finish:
    """The provider's own end of the answer, and why."""

    reason: StopReason


StreamEvent = TextDelta | OtherOutput | Usage | Finish | Raw


# --- The neutral form of a translated gateway request -------------------------------------
# A client's request in one API (OpenAI's Chat Completions, Anthropic's Messages) for a model
# of another family is read into these by the client's API (ClientApi.conversation), and the
# model's family builds its own request from them (ProviderClient.converse): one form between
# every pair, no mapper per pair. The answer comes back as the events above (TextDelta,
# ThinkingDelta, ToolCallStart, ToolCallDelta, Usage, Finish), which the client's API writes
# in its own shape (ClientApi.answer).


@dataclass(frozen=True)
class Image:
    """An image the client sent: base64 `data` of a `media_type`, or a `url` (http or https)."""

    media_type: str = ""
    data: str = field(default="", repr=False)
    url: str = ""


@dataclass(frozen=True)
class Thinking:
    """A thinking block of an earlier answer, sent back; `signature` is its provider's."""

    text: str
    signature: str = ""


@dataclass(frozen=True)
class ToolCall:
    """A tool call of an earlier answer, sent back: `arguments` as the JSON text of an object."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """What the client's tool gave back for the call `call_id` (of the tool `name`, found
    from that call): text and images, and whether it is an error."""

    call_id: str
    name: str
    content: tuple[str | Image, ...]
    is_error: bool = False


Part = str | Image | Thinking | ToolCall | ToolResult


@dataclass(frozen=True)
class Message:
    """One turn: a user's holds text, images and tool results; an assistant's text,
    thinking and tool calls."""

    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Tool:
    """A function the model may call: `parameters` is the JSON Schema of its arguments."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)


# How a request lets the model use its tools: as it likes, at least one, none, or the one
# named by Conversation.tool_name.
ToolChoice = Literal["auto", "any", "none", "tool"]

# How hard the model thinks, in OpenAI's words (reasoning_effort), which Anthropic's effort
# and thinking budgets and Gemini's thinking levels and budgets are mapped from and to.
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass(frozen=True)
class Conversation:
    """A translated request: what the client asked for, in no API's shape. None (or empty)
    where the client set nothing: the admin's model settings then apply, as for a native
    request. `params` names, for each field set here, the client's own field it came from, so
    that a refusal names the field the client can change."""

    system: str
    messages: tuple[Message, ...]
    streamed: bool = False
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice = "auto"
    tool_name: str = ""
    parallel_tool_calls: bool = True
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    effort: Effort | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        """The client's own name for the Conversation's field `name`, for a refusal to name."""
        return self.params.get(name, name)

    @property
    def effort_advisory(self) -> bool:
        """Whether a model that doesn't reason answers without the effort asked rather than
        refuse it: an Anthropic client's `thinking` (Claude Code sends it by default) is
        advice; OpenAI's `reasoning_effort` is not."""
        return self.params.get("effort") == "thinking"


class ClientApi(Protocol):
    """A gateway API's side of a translation: its requests read into a Conversation, and the
    neutral events of an answer written in its own shape."""

    def conversation(self, request: Relay) -> Conversation:
        """The client's request, read; raises RequestRefused naming the client's field that
        has no counterpart (or is not valid)."""
        ...

    def answer(
        self, events: AsyncIterator[StreamEvent], request: Relay
    ) -> AsyncIterator[StreamEvent]:
        """Each event of `events` passed on, each followed by the Raw bytes that say it in this
        API's shape where it says anything yet: a streamed request's server-sent events as
        they come; a whole answer as one Raw at the end. The events are the model family's
        (ProviderClient.converse), closed when this is; a provider's error raised by them is
        raised on."""
        ...
