from __future__ import annotations

from django.conf import settings
from django.db import models

from llmadmin.models import LLMModel
from llmadmin.providers.contract import StopReason

# What the user is told when an answer ended short of complete; errors carry their own text.
STOP_NOTICES = {
    StopReason.MAX_TOKENS: "The answer stopped at the model's max output tokens: it is incomplete.",
    StopReason.CONTEXT_FULL: "The answer stopped because the conversation filled the model's "
    "context window: it is incomplete.",
    StopReason.REFUSED: "The model declined to answer.",
    StopReason.BLOCKED: "The provider blocked the answer for safety reasons.",
    StopReason.CONTENT_FILTER: "The provider's content filter stopped the answer.",
    StopReason.PAUSED: "The provider paused this long answer before it finished: send another "
    "message (for example, continue) to let the model go on.",
    StopReason.OTHER: "The provider ended the answer early, for a reason it did not name.",
    StopReason.DISCONNECTED: "The answer was interrupted: the page closed or the connection "
    "dropped before it finished. It is incomplete.",
}


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    # The model of the latest turn; kept as history when the model goes.
    model = models.ForeignKey(LLMModel, on_delete=models.SET_NULL, null=True, related_name="+")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"
        # A summary of older messages, written by the model when the context filled up.
        SUMMARY = "summary"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    # The model that wrote an answer (the page labels each reply with it); none for the
    # user's messages, answers stored before it was kept, and once the model is deleted.
    model = models.ForeignKey(
        LLMModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    content = models.TextField(blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Why an answer stopped short; the text received until then is kept.
    error = models.CharField(max_length=300, blank=True)
    # How an answer ended (empty for the user's messages and summaries).
    stop_reason = models.CharField(
        max_length=20, blank=True, choices=[(reason.value, reason.value) for reason in StopReason]
    )
    # Replaced by a later summary: kept for the record, no longer sent to the model.
    summarised = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def notice(self) -> str | None:
        """What the user is told of how the answer ended, when it ended short."""
        return self.error or STOP_NOTICES.get(self.stop_reason)
