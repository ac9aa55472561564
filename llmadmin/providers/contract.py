"""What a provider client is given and gives back: the account's settings, listed models (and
which listed ids are fit to show), a chat turn's input and the events of its answer. No HTTP,
no database rows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
