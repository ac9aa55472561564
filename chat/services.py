"""A chat turn on the server: the user's message, the model's streamed answer, compaction."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from chat.models import STOP_NOTICES, Conversation, Message
from llmadmin.models import LLMModel
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.http import ChatInput, Finish, ProviderError, StopReason, TextDelta, Usage

logger = logging.getLogger(__name__)

SUMMARY_REQUEST = (
    "Summarise the conversation so far for your own later use: keep every fact, decision, "
    "open question, file name and piece of code that matters. Answer with the summary only."
)

Event = tuple[str, dict[str, Any]]


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


def collect_text(model: LLMModel, settings: ModelSettings, chat: ChatInput) -> str:
    """The whole answer; raises ProviderError unless it ended complete and said something."""
    text, stop_reason = [], StopReason.COMPLETE
    for event in model.provider.client().stream_chat(settings, chat):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, Finish):
            stop_reason = event.reason
    if stop_reason != StopReason.COMPLETE or not text:
        # A cut or empty summary must not stand in for the messages it would replace.
        raise ProviderError(STOP_NOTICES.get(stop_reason, "The answer was empty."))
    return "".join(text)


def conversation_compact(
    *, conversation: Conversation, model: LLMModel, context_tokens: int
) -> Message | None:
    """Summarise all but the latest exchange into one summary message, with the same model.

    The summarised messages are kept (marked), so nothing is lost. Raises ProviderError.
    """
    current = list(conversation.messages.filter(summarised=False))
    older = current[:-2]
    if not [message for message in older if message.role != Message.Role.SUMMARY]:
        return None
    context = conversation_context(conversation)
    recent = len([m for m in current[-2:] if m.role != Message.Role.SUMMARY and m.content])
    request = ChatInput(
        system=context.system,
        messages=[
            *context.messages[: len(context.messages) - recent],
            {"role": "user", "content": SUMMARY_REQUEST},
        ],
    )
    summary = collect_text(model, summary_settings(model, context_tokens), request)
    Message.objects.filter(pk__in=[message.pk for message in older]).update(summarised=True)
    return Message.objects.create(
        conversation=conversation, role=Message.Role.SUMMARY, content=summary
    )


def chat_turn(*, conversation: Conversation, model: LLMModel, text: str) -> Iterator[Event]:
    """Store the user's message, stream the answer, store it, compact when due.

    Yields (event, data) pairs for the client. A provider error ends the answer with an
    "error" event; what was already in the conversation, and the text received, is kept.
    """
    conversation.model = model
    if not conversation.title:
        conversation.title = text[:80]
    conversation.save()
    Message.objects.create(conversation=conversation, role=Message.Role.USER, content=text)
    yield "conversation", {"id": conversation.pk}

    answer, usage, stop_reason = [], None, StopReason.COMPLETE
    try:
        client = model.provider.client()
        for event in client.stream_chat(model.settings(), conversation_context(conversation)):
            if isinstance(event, TextDelta):
                answer.append(event.text)
                yield "delta", {"text": event.text}
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Finish):
                stop_reason = event.reason
    except ProviderError as error:
        logger.warning("A chat answer of %s ended with an error: %s", model, error)
        # Stored even when empty: the conversation records how the turn ended.
        Message.objects.create(
            conversation=conversation,
            role=Message.Role.ASSISTANT,
            content="".join(answer),
            error=str(error)[:300],
            stop_reason=error.stop_reason,
        )
        yield "error", {"message": str(error), "stop_reason": error.stop_reason}
        return

    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        content="".join(answer),
        input_tokens=usage.input_tokens if usage else None,
        output_tokens=usage.output_tokens if usage else None,
        stop_reason=stop_reason,
    )
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
    if usage and needs_compaction(model, usage.input_tokens):
        try:
            summary = conversation_compact(
                conversation=conversation, model=model, context_tokens=usage.input_tokens
            )
        except ProviderError as error:
            yield "error", {"message": f"Could not summarise older messages: {error}"}
            return
        if summary:
            yield "compacted", {"summary_id": summary.pk}
    yield "done", {}
