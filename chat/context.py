"""What a conversation sends the model, and its compaction: the older messages summarised by
the same model (a metered call of its own) once the context fills."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import partial

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, connection

from billing.models import UsageRecord
from chat.metered import Admission, MeteredCall
from chat.models import STOP_NOTICES, Conversation, Message
from chat.retries import database
from llmadmin.models import LLMModel
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import ChatInput, StopReason
from llmadmin.providers.errors import ProviderError

SUMMARY_REQUEST = (
    "Summarise the conversation so far for your own later use: keep every fact, decision, "
    "open question, file name and piece of code that matters. Answer with the summary only."
)


@functools.cache
def context_query() -> str:
    """The SQL of conversation_context: the messages not summarised, in order. Plain SQL and
    two columns: the ORM took longer to build the query than the database to answer it."""
    table = Message._meta.db_table
    # The table name only is formatted in; the conversation is a parameter.
    return (
        f"SELECT role, content FROM {table} WHERE conversation_id = %s AND NOT summarised "  # noqa: S608
        "ORDER BY created_at, id"
    )


def context_of(current: list[tuple[str, str]]) -> ChatInput:
    """The latest summary (as the system text) and the messages after it, from the roles and
    contents of the messages not summarised, in order."""
    summaries = [content for role, content in current if role == Message.Role.SUMMARY]
    return ChatInput(
        system=f"Summary of the earlier conversation:\n{summaries[-1]}" if summaries else "",
        messages=[
            {"role": role, "content": content}
            for role, content in current
            if role != Message.Role.SUMMARY and content
        ],
    )


def conversation_context(conversation: Conversation) -> ChatInput:
    """What this conversation sends the model, as stored now (a compaction's plan)."""
    with connection.cursor() as cursor:
        cursor.execute(context_query(), [conversation.pk])
        return context_of(cursor.fetchall())


@dataclass(frozen=True)
class ConversationSoFar:
    """A conversation and what it sends the model so far: where a turn starts."""

    conversation: Conversation
    context: ChatInput


def conversation_new(owner: AbstractBaseUser) -> ConversationSoFar:
    return ConversationSoFar(Conversation(owner=owner), ChatInput(system="", messages=[]))


# What a next turn reads of its conversation's row.
SO_FAR_FIELDS = ("id", "owner_id", "model_id", "title")


@functools.cache
def so_far_query() -> str:
    conversation, message = Conversation._meta, Message._meta
    columns = ", ".join(f"c.{conversation.get_field(name).column}" for name in SO_FAR_FIELDS)
    # Table and column names only are formatted in; the ids are parameters.
    return (
        f"SELECT {columns}, m.role, m.content FROM {conversation.db_table} c "  # noqa: S608
        f"LEFT JOIN {message.db_table} m ON m.conversation_id = c.id AND NOT m.summarised "
        "WHERE c.id = %s AND c.owner_id = %s ORDER BY m.created_at, m.id"
    )


def conversation_so_far(owner_id: int, conversation_id: int) -> ConversationSoFar | None:
    """This developer's conversation with this id and its context, in one query; None when
    they have no such conversation. Plain SQL: every next turn reads it at its start."""
    if not 0 < conversation_id < 2**63:
        return None  # no row has such an id, and SQLite can't even take it as a parameter
    with connection.cursor() as cursor:
        cursor.execute(so_far_query(), [conversation_id, owner_id])
        rows = cursor.fetchall()
    if not rows:
        return None
    # Only these fields read: a save writes no others (a turn saves model, title, updated_at).
    conversation = Conversation.from_db(connection.alias, SO_FAR_FIELDS, rows[0][:4])
    return ConversationSoFar(
        conversation, context_of([(role, content) for *_, role, content in rows if role])
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
    return model.provider.provider_type.with_answer_room(settings, room)


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


def summary_store(
    conversation: Conversation, older: list[int], call: MeteredCall[Message]
) -> Message | None:
    """The summary in place of the messages it summarises; nothing when the call failed."""
    if call.error or call.cancelled:
        return None
    Message.objects.filter(pk__in=older).update(summarised=True)
    return Message.objects.create(
        conversation=conversation, role=Message.Role.SUMMARY, content=call.answer
    )


async def conversation_compact(
    *, conversation: Conversation, admission: Admission, context_tokens: int
) -> Message | None:
    """Summarise all but the latest exchange into one summary message, with the turn's model,
    under the turn's admission: part of a turn let through, it is billed but not refused.

    The summarised messages are kept (marked), so nothing is lost. Raises ProviderError, and
    DatabaseError when the summary could not be stored (its call is in the ledger all the same).
    """
    plan = await database(partial(compaction_plan, conversation))
    if plan is None:
        return None
    async with admission.call(
        chat=plan.request,
        settings=summary_settings(admission.model, context_tokens),
        kind=UsageRecord.Kind.SUMMARY,
        store=partial(summary_store, conversation, plan.older),
    ) as call:
        async for _ in call:
            pass
        if call.stop_reason != StopReason.COMPLETE or not call.text:
            # A cut or empty summary must not stand in for the messages it would replace.
            raise ProviderError(STOP_NOTICES.get(call.stop_reason, "The answer was empty."))
    if call.stored is None:
        raise DatabaseError("The summary could not be stored.")
    return call.stored
