"""A chat turn on the server: the user's message, the model's streamed answer as server-sent
events, compaction.

A turn is let through by the metered call (chat.metered) and starts in the view (the user's
message stored, the context read); then its answer streams on the event loop: no thread waits
on the provider. The few writes the stream makes run in a thread and are retried, so a
database that blinks loses nothing the user saw.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from billing.limits import LimitReached, lease_end
from chat.context import ConversationSoFar, conversation_compact, needs_compaction
from chat.metered import Admission, MeteredCall
from chat.models import Conversation, Message
from chat.retries import START_RETRY_SECONDS, release_connection, with_retries
from llmadmin.providers.contract import ChatInput, StopReason, TextDelta
from llmadmin.providers.errors import SETUP_FAULTS, ProviderError

logger = logging.getLogger(__name__)

Event = tuple[str, dict[str, Any]]

UNAVAILABLE = "This model is unavailable right now: pick another one, or ask an administrator."


def said_to_developer(error: ProviderError) -> str:
    """What the developer is told of a failed call: a fault of the server's setup (missing
    or refused credentials) is the admin's to read, in the log and on the provider's page."""
    return UNAVAILABLE if isinstance(error, SETUP_FAULTS) else str(error)


@dataclass(frozen=True)
class Turn:
    """A started turn: the user's message is stored; what the answer needs is read."""

    conversation: Conversation
    admission: Admission
    chat: ChatInput


@dataclass(frozen=True)
class InsertStatements:
    """A new conversation's insert and its first message's (the conversation's id its first
    value), each with the fields whose values it takes, in order; and on PostgreSQL both as
    one statement, the conversation's values then the message's."""

    conversation: str
    conversation_fields: list[Field]
    message: str
    message_fields: list[Field]
    together: str | None


@functools.cache
def insert_statements(vendor: str) -> InsertStatements:
    conversation, message = Conversation._meta, Message._meta
    conversation_fields = [
        field for field in conversation.local_concrete_fields if field.column != "id"
    ]
    message_fields = [
        field
        for field in message.local_concrete_fields
        if field.column not in ("id", "conversation_id")
    ]
    quote = connection.ops.quote_name

    def columns(fields: list[Field]) -> str:
        return ", ".join(quote(field.column) for field in fields)

    def values(fields: list[Field]) -> str:
        return ", ".join(["%s"] * len(fields))

    # Table and column names only are formatted in; every value is a parameter.
    conversation_insert = (
        f"INSERT INTO {quote(conversation.db_table)} ({columns(conversation_fields)}) "  # noqa: S608
        f"VALUES ({values(conversation_fields)})"
    )
    message_into = (
        f"INSERT INTO {quote(message.db_table)} (conversation_id, {columns(message_fields)})"
    )
    together = None
    if vendor == "postgresql":  # SQLite has no data-modifying WITH
        together = (
            f"WITH c AS ({conversation_insert} RETURNING id) "  # noqa: S608
            f"{message_into} SELECT c.id, {values(message_fields)} FROM c "
            "RETURNING conversation_id"
        )
    return InsertStatements(
        conversation=conversation_insert,
        conversation_fields=conversation_fields,
        message=f"{message_into} VALUES (%s, {values(message_fields)})",
        message_fields=message_fields,
        together=together,
    )


def conversation_insert_with_message(conversation: Conversation, message: Message) -> None:
    """Insert a new conversation and its first message, both or neither, each value as the
    ORM's insert writes it (auto_now included). On PostgreSQL in one statement: one round trip
    where a transaction took four (its BEGIN, the two inserts, its COMMIT). On SQLite in a
    transaction whose statements and values are ready before it takes the database's one write
    lock: every turn starting waits for it, and Python's work while it is held goes at the pace
    the GIL allows under load."""
    statements = insert_statements(connection.vendor)
    conversation_values = [
        field.get_db_prep_save(field.pre_save(conversation, True), connection)
        for field in statements.conversation_fields
    ]
    message_values = [
        field.get_db_prep_save(field.pre_save(message, True), connection)
        for field in statements.message_fields
    ]
    if statements.together is not None:
        with connection.cursor() as cursor:
            cursor.execute(statements.together, conversation_values + message_values)
            (pk,) = cursor.fetchone()
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statements.conversation, conversation_values)
            pk = cursor.lastrowid  # any SQLite Django supports: RETURNING needs 3.35
            cursor.execute(statements.message, [pk, *message_values])
    conversation.pk = pk
    conversation._state.adding = False
    conversation._state.db = connection.alias


def turn_start(*, so_far: ConversationSoFar, admission: Admission, text: str) -> Turn:
    """Store the user's message, so that the stream itself reads nothing from the database:
    the answer's context is the conversation's so far and this message. Raises DatabaseError
    when the database is down (the admission's slot freed)."""
    conversation = so_far.conversation
    # Taken before a first attempt saves it: a retried one still knows.
    new = conversation._state.adding
    # The conversation is written when new, or when its model or title changes.
    changed = new or conversation.model_id != admission.model.pk or not conversation.title
    context = ChatInput(
        system=so_far.context.system,
        messages=[*so_far.context.messages, {"role": "user", "content": text}],
    )

    def start() -> Turn:
        if changed:
            conversation.model = admission.model
            conversation.title = conversation.title or text[:80]
        message = Message(conversation=conversation, role=Message.Role.USER, content=text)
        if new:
            conversation_insert_with_message(conversation, message)
            return Turn(conversation, admission, context)
        # One write needs no transaction; with the conversation's, both or neither.
        with transaction.atomic() if changed else nullcontext():
            if changed:
                # A next turn's conversation was read in part (chat.context.SO_FAR_FIELDS).
                conversation.save(update_fields=["model", "title", "updated_at"])
            message.save()
        return Turn(conversation, admission, context)

    try:
        turn = with_retries(start, START_RETRY_SECONDS)
    except DatabaseError:
        # The turn never runs: its slot is free at once, not when its lease expires (or then,
        # when the database is down).
        if admission.lease_id is not None:
            lease_end(admission.lease_id)
        raise
    release_connection()
    return turn


def answer_store(turn: Turn, call: MeteredCall[Message]) -> Message:
    """The answer as far as it went, stored with how it ended: even when empty, the
    conversation records how the turn ended."""
    if call.error:
        fields: dict[str, Any] = {
            "error": said_to_developer(call.error)[:300],
            "stop_reason": call.error.stop_reason,
        }
    elif call.cancelled:
        fields = {"stop_reason": StopReason.DISCONNECTED}
    else:
        usage = call.usage
        fields = {
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "stop_reason": call.stop_reason,
        }
    # The conversation's last activity: its start writes the row only when something changed.
    Conversation.objects.filter(pk=turn.conversation.pk).update(updated_at=timezone.now())
    return Message.objects.create(
        conversation=turn.conversation,
        role=Message.Role.ASSISTANT,
        model=turn.admission.model,
        content=call.answer,
        **fields,
    )


NOT_STORED = (
    "The answer could not be saved: the database did not respond. Copy what you need from "
    "this page before leaving it."
)


async def turn_answer(turn: Turn) -> AsyncIterator[Event]:
    """Stream the answer, store it, compact when due; (event, data) pairs for the client.

    Every delta the user was sent is in the stored answer, however the answer ends: complete,
    with a provider error or garbage (an "error" event), at a time limit, or because the user
    went away (stored as "disconnected", the upstream request closed at once). The turn holds
    its slot under the developer's limits until then.
    """
    try:
        async with turn.admission.held(), aclosing(turn_events(turn)) as events:
            async for event in events:
                yield event
    except LimitReached as late:  # raised before the turn's first event
        yield "conversation", {"id": turn.conversation.pk}
        yield "error", {"message": late.detail}


async def turn_events(turn: Turn) -> AsyncIterator[Event]:
    conversation, model = turn.conversation, turn.admission.model
    yield "conversation", {"id": conversation.pk}

    try:
        async with turn.admission.call(chat=turn.chat, store=partial(answer_store, turn)) as call:
            async for event in call:
                if isinstance(event, TextDelta):
                    yield "delta", {"text": event.text}
    except ProviderError as error:
        logger.warning("A chat answer of %s ended with an error: %s", model, error)
        said = said_to_developer(error)
        message = said if call.stored else f"{said} {NOT_STORED}"
        yield "error", {"message": message, "stop_reason": error.stop_reason}
        return

    stored, stop_reason = call.stored, call.stop_reason
    if stored is None:
        yield "error", {"message": NOT_STORED, "stop_reason": stop_reason}
        return
    yield (
        "message",
        {
            "id": stored.pk,
            "input_tokens": stored.input_tokens,
            "output_tokens": stored.output_tokens,
            "stop_reason": stored.stop_reason,
            "notice": stored.notice,
        },
    )
    input_tokens = call.usage.input_tokens if call.usage else None
    if input_tokens is not None and needs_compaction(model, input_tokens):
        try:
            summary = await conversation_compact(
                conversation=conversation, admission=turn.admission, context_tokens=input_tokens
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
