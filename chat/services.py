"""A chat turn on the server: the user's message, the model's streamed answer, compaction.

A turn starts in the view (the user's message stored, the context read), then its answer
streams on the event loop: no thread waits on the provider. The few writes the stream makes
run in a thread and are retried, so a database that blinks loses nothing the user saw.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from chat.models import STOP_NOTICES, Conversation, Message
from llmadmin.models import LLMModel, UsageRecord
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import ChatInput, Finish, StopReason, TextDelta, Usage
from llmadmin.providers.errors import SETUP_FAULTS, ProviderError
from llmadmin.providers.transport import ProviderClient
from llmadmin.usage import usage_record

logger = logging.getLogger(__name__)

SUMMARY_REQUEST = (
    "Summarise the conversation so far for your own later use: keep every fact, decision, "
    "open question, file name and piece of code that matters. Answer with the summary only."
)

Event = tuple[str, dict[str, Any]]
T = TypeVar("T")

UNAVAILABLE = "This model is unavailable right now: pick another one, or ask an administrator."


def said_to_developer(error: ProviderError) -> str:
    """What the developer is told of a failed call: a fault of the server's setup (missing
    or refused credentials) is the admin's to read, in the log and on the provider's page."""
    return UNAVAILABLE if isinstance(error, SETUP_FAULTS) else str(error)


def conversation_context(conversation: Conversation) -> ChatInput:
    """The latest summary (as the system text) and the messages after it."""
    current = list(conversation.messages.filter(summarised=False))
    summaries = [message.content for message in current if message.role == Message.Role.SUMMARY]
    return ChatInput(
        system=f"Summary of the earlier conversation:\n{summaries[-1]}" if summaries else "",
        messages=[
            {"role": message.role, "content": message.content}
            for message in current
            if message.role != Message.Role.SUMMARY and message.content
        ],
    )


def needs_compaction(model: LLMModel, context_tokens: int) -> bool:
    """At compression_threshold % of the context limit; 100 turns compaction off."""
    threshold = model.compression_threshold
    return threshold < 100 and context_tokens * 100 >= threshold * model.context_limit


def summary_settings(model: LLMModel, context_tokens: int) -> ModelSettings:
    """The model's settings with room for a whole summary: a summary cut at a small max
    output would fail at every later turn. Up to the catalog's output limit, within what the
    context has left."""
    settings = model.settings()
    facts = model.catalog_facts
    if facts is None or not facts.output_limit:
        return settings
    room = min(facts.output_limit, model.context_limit - context_tokens)
    # OpenAI's max_completion_tokens option caps the answer the same way.
    options = dict(settings.options)
    own_max = options.pop("max_completion_tokens", None) or settings.max_output_tokens or 0
    if room > own_max:
        return replace(settings, max_output_tokens=room, options=options)
    return settings


@dataclass
class Collected:
    """A call as far as it went: what was sent, the text received, how it ended, the tokens
    the provider reported."""

    sent: ChatInput
    # The client that made the call: whether the provider may bill it.
    client: ProviderClient | None = None
    text: list[str] = field(default_factory=list)
    stop_reason: StopReason = StopReason.COMPLETE
    usage: Usage | None = None
    # Whether the provider ended the answer (a Finish), rather than the call being cut short.
    finished: bool = False

    @property
    def cut_short(self) -> bool:
        """The provider may bill the call, and it ended before the provider ended it."""
        return bool(self.client and self.client.billable) and not self.finished


# Bytes of UTF-8 per token, for a call cut short before the provider counted it: needs no
# tokenizer, and errs high. English and code (about 4 bytes a token) come out at twice their
# count; Chinese and Japanese (3 bytes a character, 1 to 1.5 tokens) at about theirs.
BYTES_PER_TOKEN = 2


def usage_of(call: Collected) -> dict[str, Any]:
    """usage_record's arguments for a call: the counts as reported; estimated from the bytes
    sent and received when text arrived without them, or when the call was cut short with
    fewer output tokens counted than it sent (the provider bills what it sent, and a
    developer who leaves early must not spend for free, even before the first word). A call
    with no text that was refused, or that the provider ended, is recorded as reported."""
    usage = call.usage
    if not call.text and not call.cut_short:
        return {"usage": usage}
    received = tokens_in(*call.text)
    if usage is not None and usage.input_tokens is not None:
        if call.finished or (usage.output_tokens or 0) >= received:
            return {"usage": usage}
        return {"usage": replace(usage, output_tokens=received), "estimated": True}
    sent = tokens_in(call.sent.system, *(message["content"] for message in call.sent.messages))
    return {"usage": Usage(sent, received), "estimated": True}


def tokens_in(*texts: str) -> int:
    """At most this many tokens: UTF-8 bytes / 2, rounded up."""
    return -(-sum(len(text.encode()) for text in texts) // BYTES_PER_TOKEN)


async def collect_text(
    model: LLMModel, settings: ModelSettings, chat: ChatInput, collected: Collected
) -> str:
    """The whole answer; raises ProviderError unless it ended complete and said something.
    What arrived (the usage, for the ledger) is in `collected` however it ends."""
    collected.client = model.provider.client()
    async for event in collected.client.stream_chat(settings, chat):
        if isinstance(event, TextDelta):
            collected.text.append(event.text)
        elif isinstance(event, Usage):
            collected.usage = event
        elif isinstance(event, Finish):
            collected.stop_reason, collected.finished = event.reason, True
    if collected.stop_reason != StopReason.COMPLETE or not collected.text:
        # A cut or empty summary must not stand in for the messages it would replace.
        raise ProviderError(STOP_NOTICES.get(collected.stop_reason, "The answer was empty."))
    return "".join(collected.text)


@dataclass(frozen=True)
class Compaction:
    """The messages a summary would replace, and the request that asks for it."""

    older: list[int]
    request: ChatInput


def compaction_plan(conversation: Conversation) -> Compaction | None:
    """All but the latest exchange, when there is something in it to summarise."""
    current = list(conversation.messages.filter(summarised=False))
    older = current[:-2]
    if not [message for message in older if message.role != Message.Role.SUMMARY]:
        return None
    context = conversation_context(conversation)
    recent = len([m for m in current[-2:] if m.role != Message.Role.SUMMARY and m.content])
    return Compaction(
        older=[message.pk for message in older],
        request=ChatInput(
            system=context.system,
            messages=[
                *context.messages[: len(context.messages) - recent],
                {"role": "user", "content": SUMMARY_REQUEST},
            ],
        ),
    )


def usage_store(
    conversation: Conversation,
    model: LLMModel,
    called_at: datetime,
    call: Collected,
    kind: str = UsageRecord.Kind.CHAT,
) -> None:
    """The call in the ledger, without what it produced (which could not be stored, or which
    the call didn't produce). Its own transaction when called alone: a retried attempt records
    the call once."""
    with transaction.atomic():
        usage_record(
            user_id=conversation.owner_id,
            model=model,
            called_at=called_at,
            kind=kind,
            **usage_of(call),
        )


def summary_store(
    conversation: Conversation,
    older: list[int],
    summary: str,
    model: LLMModel,
    called_at: datetime,
    call: Collected,
) -> Message:
    with transaction.atomic():
        Message.objects.filter(pk__in=older).update(summarised=True)
        usage_store(conversation, model, called_at, call, UsageRecord.Kind.SUMMARY)
        return Message.objects.create(
            conversation=conversation, role=Message.Role.SUMMARY, content=summary
        )


async def conversation_compact(
    *, conversation: Conversation, model: LLMModel, context_tokens: int
) -> Message | None:
    """Summarise all but the latest exchange into one summary message, with the same model.

    The summarised messages are kept (marked), so nothing is lost. Raises ProviderError, and
    DatabaseError when the summary could not be stored (its call is in the ledger all the same).
    """
    plan = await database(partial(compaction_plan, conversation))
    if plan is None:
        return None
    called_at, collected = timezone.now(), Collected(sent=plan.request)
    record = partial(
        usage_store, conversation, model, called_at, collected, UsageRecord.Kind.SUMMARY
    )
    try:
        summary = await collect_text(
            model, summary_settings(model, context_tokens), plan.request, collected
        )
    except (ProviderError, asyncio.CancelledError, GeneratorExit):
        # The call is in the ledger all the same, also when the user went away meanwhile:
        # the provider may charge for it.
        with suppress(Exception):  # the database is down: logged by its retries
            await asyncio.shield(database(record))
        raise
    store = partial(summary_store, conversation, plan.older, summary, model, called_at, collected)
    stored = await in_thread(partial(stored_or_recorded, store, record))
    if stored is None:
        raise DatabaseError("The summary could not be stored.")
    return stored


# The stream's writes (an answer, a summary, their calls' usage) are retried when the
# database connection fails, for this many seconds, the pauses between attempts doubling from
# WRITE_PAUSE to at most WRITE_PAUSE_MAX: a database down for up to that long (a restart, a
# failover) loses nothing. Each attempt takes a connection afresh from the pool, which checks
# it first and waits up to its timeout (DATABASE_POOL_TIMEOUT) for one.
WRITE_RETRY_SECONDS = 20.0
WRITE_PAUSE = 0.25
WRITE_PAUSE_MAX = 2.0
# A turn's start (the user's message) only briefly: nothing was sent yet, and a 503 tells the
# user to try again.
START_RETRY_SECONDS = 1.0


def with_retries(write: Callable[[], T], seconds: float | None = None) -> T:
    """The write, tried again when the database connection fails, for `seconds` (by default
    WRITE_RETRY_SECONDS); raises the last error."""
    give_up_at = time.monotonic() + (WRITE_RETRY_SECONDS if seconds is None else seconds)
    pause, attempt = WRITE_PAUSE, 1
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if time.monotonic() + pause > give_up_at:
                raise
            logger.warning("A database write failed (attempt %s); trying again.", attempt)
            if not connection.in_atomic_block:
                connection.close()  # the next attempt takes a connection afresh
            time.sleep(pause)
            pause, attempt = min(pause * 2, WRITE_PAUSE_MAX), attempt + 1


def stored_or_recorded(store: Callable[[], T], record: Callable[[], object]) -> T | None:
    """What a provider call produced, stored with its usage by `store`; when that fails for
    good (the database stayed down through the retries, or refused the row), the usage alone
    by `record`: the provider bills the call whether or not we kept what it produced. Each
    retried; None when only the usage was recorded; raises when neither could be."""
    try:
        return with_retries(store)
    except Exception as error:
        logger.error("A provider call's result could not be stored: %s", type(error).__name__)
    try:
        with_retries(record)
    except Exception as error:
        logger.error("A provider call could not be recorded: %s", type(error).__name__)
        raise
    return None


async def in_thread(work: Callable[[], T]) -> T:
    """Database work from a stream, in a thread; no connection is held after it (a summary
    or an answer may stream for minutes next)."""

    def run() -> T:
        try:
            return work()
        finally:
            release_connection()

    return await sync_to_async(run)()


async def database(work: Callable[[], T]) -> T:
    """Database work from a stream, in a thread, retried."""
    return await in_thread(partial(with_retries, work))


def release_connection() -> None:
    """An answer may stream for minutes: no database connection is held open meanwhile (the
    writes at its end open their own). Inside a transaction (a test's) it is kept."""
    if not connection.in_atomic_block:
        connection.close()


@dataclass(frozen=True)
class Turn:
    """A started turn: the user's message is stored; what the answer needs is read."""

    conversation: Conversation
    model: LLMModel
    chat: ChatInput


def turn_start(*, conversation: Conversation, model: LLMModel, text: str) -> Turn:
    """Store the user's message and read what the answer needs, so that the stream itself
    reads nothing from the database. Raises DatabaseError when the database is down."""

    def start() -> Turn:
        with transaction.atomic():
            conversation.model = model
            if not conversation.title:
                conversation.title = text[:80]
            conversation.save()
            Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
        # The model comes with its provider (the serializer's select_related): the stream
        # builds its client without a query.
        return Turn(conversation, model, conversation_context(conversation))

    turn = with_retries(start, START_RETRY_SECONDS)
    release_connection()
    return turn


def answer_store(turn: Turn, call: Collected, called_at: datetime, **fields: Any) -> Message:
    # Its own transaction: a failed attempt leaves nothing behind to retry around. The call's
    # usage is recorded with it: both or neither.
    with transaction.atomic():
        usage_record(
            user_id=turn.conversation.owner_id,
            model=turn.model,
            called_at=called_at,
            **usage_of(call),
        )
        return Message.objects.create(
            conversation=turn.conversation,
            role=Message.Role.ASSISTANT,
            model=turn.model,
            content="".join(call.text),
            **fields,
        )


async def answer_keep(
    turn: Turn, call: Collected, called_at: datetime, **fields: Any
) -> Message | None:
    """Store the answer as far as it went with the call's usage, retrying; the usage alone
    when the answer can't be stored; None then.

    Shielded: a client that goes away mid-write doesn't cancel it.
    """
    store = partial(answer_store, turn, call, called_at, **fields)
    record = partial(usage_store, turn.conversation, turn.model, called_at, call)
    try:
        return await asyncio.shield(in_thread(partial(stored_or_recorded, store, record)))
    except Exception:  # the database stayed down: logged, and told, not raised
        return None


NOT_STORED = (
    "The answer could not be saved: the database did not respond. Copy what you need from "
    "this page before leaving it."
)


async def turn_answer(turn: Turn) -> AsyncIterator[Event]:
    """Stream the answer, store it, compact when due; (event, data) pairs for the client.

    Every delta the user was sent is in the stored answer, however the answer ends: complete,
    with a provider error or garbage (an "error" event), at a time limit, or because the user
    went away (stored as "disconnected", the upstream request closed at once).
    """
    conversation, model = turn.conversation, turn.model
    yield "conversation", {"id": conversation.pk}

    call = Collected(sent=turn.chat)
    called_at = timezone.now()
    try:
        client = call.client = model.provider.client()
        # Closed on the way out, however the answer ends: before anything is written.
        async with aclosing(client.stream_chat(model.settings(), turn.chat)) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    call.text.append(event.text)
                    yield "delta", {"text": event.text}
                elif isinstance(event, Usage):
                    call.usage = event
                elif isinstance(event, Finish):
                    call.stop_reason, call.finished = event.reason, True
    except ProviderError as error:
        logger.warning("A chat answer of %s ended with an error: %s", model, error)
        said = said_to_developer(error)
        # Stored even when empty: the conversation records how the turn ended.
        stored = await answer_keep(
            turn, call, called_at, error=said[:300], stop_reason=error.stop_reason
        )
        message = said if stored else f"{said} {NOT_STORED}"
        yield "error", {"message": message, "stop_reason": error.stop_reason}
        return
    except (asyncio.CancelledError, GeneratorExit):
        # The user went away: the request to the provider is already closed; what they were
        # sent is kept.
        await answer_keep(turn, call, called_at, stop_reason=StopReason.DISCONNECTED)
        raise

    usage, stop_reason = call.usage, call.stop_reason
    input_tokens = usage.input_tokens if usage else None
    message = await answer_keep(
        turn,
        call,
        called_at,
        input_tokens=input_tokens,
        output_tokens=usage.output_tokens if usage else None,
        stop_reason=stop_reason,
    )
    if message is None:
        yield "error", {"message": NOT_STORED, "stop_reason": stop_reason}
        return
    yield (
        "message",
        {
            "id": message.pk,
            "input_tokens": message.input_tokens,
            "output_tokens": message.output_tokens,
            "stop_reason": message.stop_reason,
            "notice": message.notice,
        },
    )
    if input_tokens is not None and needs_compaction(model, input_tokens):
        try:
            summary = await conversation_compact(
                conversation=conversation, model=model, context_tokens=input_tokens
            )
        except ProviderError as error:
            logger.warning("A summary by %s ended with an error: %s", model, error)
            said = said_to_developer(error)
            yield "error", {"message": f"Could not summarise older messages: {said}"}
            return
        except DatabaseError:
            yield (
                "error",
                {"message": "Could not summarise older messages: the database did not respond."},
            )
            return
        if summary:
            yield "compacted", {"summary_id": summary.pk}
    yield "done", {}
