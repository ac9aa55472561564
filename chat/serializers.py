"""Output shapes of the model list API: used to build it and to document it."""

from __future__ import annotations

from datetime import date

from rest_framework import serializers

from chat.context import ConversationSoFar, conversation_so_far
from chat.metered import ModelUnavailable, Resolution, model_resolve
from chat.models import Conversation, Message
from llmadmin.models import Availability, LLMModel


class ChatModelSerializer(serializers.ModelSerializer):
    provider_id = serializers.IntegerField(help_text="The provider account's id.")
    provider_type = serializers.CharField(source="provider.type")
    provider_label = serializers.CharField(
        source="provider.label",
        help_text="The account's name, and its type where the name doesn't say it.",
    )

    class Meta:
        model = LLMModel
        fields = [
            "id",
            "identifier",
            "display_name",
            "provider_id",
            "provider_type",
            "provider_label",
            "context_limit",
            "is_default",
        ]


class ProviderGroupSerializer(serializers.Serializer):
    provider_id = serializers.IntegerField(help_text="The provider account's id.")
    provider_type = serializers.CharField(
        help_text="The account's provider type; a type may have several accounts."
    )
    provider_label = serializers.CharField(
        help_text="The account's name, and its type where the name doesn't say it."
    )
    models = ChatModelSerializer(many=True)


class UnavailableProviderSerializer(serializers.Serializer):
    provider_id = serializers.IntegerField(help_text="The provider account's id.")
    provider_type = serializers.CharField()
    provider_label = serializers.CharField(
        help_text="The account's name, and its type where the name doesn't say it."
    )
    reason = serializers.ChoiceField(
        choices=[value for value in Availability.values if value != Availability.AVAILABLE],
        help_text="Why the account's enabled models are not offered.",
    )
    model_count = serializers.IntegerField(help_text="Enabled models this account has.")


def money_text(help_text: str) -> serializers.CharField:
    """An amount's twin as pages show it (llmadmin.money: "$1,234.56", "$0.0042")."""
    return serializers.CharField(help_text=help_text)


class ModelCapSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    monthly_cap = serializers.DecimalField(max_digits=20, decimal_places=4)
    monthly_cap_text = money_text('monthly_cap as shown, e.g. "$25.00".')
    spent = serializers.DecimalField(max_digits=20, decimal_places=4)
    spent_text = money_text("spent as shown.")
    remaining = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        allow_null=True,
        help_text="What is left for this model: its cap's rest within the budget's rest.",
    )
    remaining_text = money_text('remaining as shown; "No limit" when it is null.')


class BudgetSerializer(serializers.Serializer):
    monthly_allowance = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        allow_null=True,
        help_text="USD per calendar month; null when no budget limits this developer.",
    )
    monthly_allowance_text = money_text(
        'monthly_allowance as shown, e.g. "$1,250.00"; "No limit" when it is null.'
    )
    source = serializers.ChoiceField(
        choices=["override", "group"],
        allow_null=True,
        help_text="override: their own allowance; group: the highest of their groups'.",
    )
    spent = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        help_text="USD spent this month on calls with a known cost.",
    )
    spent_text = money_text('spent as shown, e.g. "$13.50" or "$0.0042".')
    remaining = serializers.DecimalField(max_digits=20, decimal_places=4, allow_null=True)
    remaining_text = money_text('remaining as shown; "No limit" when it is null.')
    resets_on = serializers.DateField(help_text="The day the month's budget starts afresh.")
    model_caps = ModelCapSerializer(
        many=True, help_text="Models of this developer's list with a monthly cap."
    )


class ModelListSerializer(serializers.Serializer):
    default_model_id = serializers.IntegerField(
        allow_null=True,
        help_text="The admin's default model when it is available to this developer, else "
        "their first model; null when they have none.",
    )
    groups = ProviderGroupSerializer(
        many=True,
        help_text="Available models by provider account: types in registry order, a type's "
        "accounts in the order they were added.",
    )
    unavailable_providers = UnavailableProviderSerializer(
        many=True,
        help_text="Provider accounts with enabled models that are not available, and why.",
    )
    restricted_model_count = serializers.IntegerField(
        help_text="Enabled models of available providers kept to groups and users this "
        "developer is not among: an administrator can give them access.",
    )
    budget = BudgetSerializer(help_text="This developer's budget this month.")


class UsageSumsSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    uncosted_calls = serializers.IntegerField(
        help_text="Calls without a cost (unpriced model, or no token counts reported): not in cost."
    )
    long_context_calls = serializers.IntegerField(
        help_text="Calls whose prompt was long enough to be costed at the model's long-context "
        "prices (over 200k input tokens for most models)."
    )
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cache_read_tokens = serializers.IntegerField()
    cache_write_tokens = serializers.IntegerField()
    reasoning_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        allow_null=True,
        help_text="USD, of the calls with a known cost; null when no call had one (unknown, "
        "not zero).",
    )
    cost_text = money_text(
        'The cost as shown: "unpriced" when no call had a known cost, "$1.20 + 3 unpriced '
        'calls" when some had none, else "$1.20".'
    )


class ModelUsageSerializer(UsageSumsSerializer):
    model_id = serializers.IntegerField()
    model = serializers.CharField(help_text="Its display name.")
    provider_type = serializers.CharField()


class DayUsageSerializer(UsageSumsSerializer):
    day = serializers.DateField()


class LimitSerializer(serializers.Serializer):
    value = serializers.IntegerField(min_value=1, allow_null=True, help_text="null: no limit.")
    source = serializers.ChoiceField(
        choices=["override", "group"],
        allow_null=True,
        help_text="override: set for this developer; group: the highest of their groups' (see "
        "group); null when no limit is set.",
    )
    group = serializers.CharField(
        allow_null=True, help_text="The group's name when the limit comes from a group."
    )
    text = serializers.CharField(
        help_text='The limit as shown, e.g. "Tokens per minute: 100,000" or "Turns at once: '
        'no limit".'
    )


class LimitsSerializer(serializers.Serializer):
    concurrent_turns = LimitSerializer(help_text="Chat turns and gateway calls running at once.")
    requests_per_minute = LimitSerializer(
        help_text="Chat turns, gateway calls and the Anthropic API's token counts started in "
        "any 60 seconds."
    )
    tokens_per_minute = LimitSerializer(
        help_text="Tokens (input, cached input included, and output) of the calls recorded in "
        "the last 60 seconds, past which new ones wait."
    )


class OwnUsageSerializer(serializers.Serializer):
    month = serializers.CharField(help_text="YYYY-MM.")
    budget = BudgetSerializer()
    limits = LimitsSerializer(
        help_text="This developer's limits now, each with where it comes from. Past one, a "
        "turn is refused with 429 and Retry-After."
    )
    by_model = ModelUsageSerializer(many=True)
    by_day = DayUsageSerializer(many=True)


class UsageQuerySerializer(serializers.Serializer):
    month = serializers.RegexField(
        r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$",
        required=False,
        help_text="YYYY-MM; this month when left out.",
        error_messages={"invalid": "Enter a month from 1970-01 on as YYYY-MM, e.g. 2026-11."},
    )

    def validate_month(self, value: str) -> date:
        return date(int(value[:4]), int(value[5:]), 1)


class ChatTurnInputSerializer(serializers.Serializer):
    model_id = serializers.IntegerField()
    # Blank (or only whitespace, which is trimmed) is refused too; min_length says so in the schema.
    message = serializers.CharField(min_length=1, max_length=200_000)
    conversation_id = serializers.IntegerField(required=False)

    def validate_model_id(self, value: int) -> Resolution:
        # A model this developer may not use reads as one that doesn't exist; reported with
        # the other fields' errors. Their budget is checked once the input is valid.
        try:
            return model_resolve(user=self.context["user"], model_id=value)
        except ModelUnavailable:
            raise serializers.ValidationError("This model is not available for chat.") from None

    def validate_conversation_id(self, value: int) -> ConversationSoFar:
        so_far = conversation_so_far(self.context["user"].pk, value)
        if so_far is None:
            raise serializers.ValidationError("No such conversation of yours.")
        return so_far


class ErrorSerializer(serializers.Serializer):
    """DRF's body for a refusal: not logged in, no permission, no CSRF token, not found."""

    detail = serializers.CharField()


class BudgetRefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What is spent, and when it resets.")
    code = serializers.ChoiceField(choices=["budget_spent"])


class LimitRefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Which limit is reached, and when to try again.")
    code = serializers.ChoiceField(choices=["limit_reached"])


class DatabaseUnavailableSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["database_unavailable"])


class MessageSerializer(serializers.ModelSerializer):
    # How an answer ended, in words, unless it ended complete (see chat.models.STOP_NOTICES).
    notice = serializers.CharField(read_only=True, allow_null=True)
    model = serializers.CharField(
        source="model.display_name",
        default=None,
        allow_null=True,
        help_text="The display name of the model that wrote this answer; null for the user's "
        "messages, and when that model is gone.",
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "role",
            "model_id",
            "model",
            "content",
            "error",
            "stop_reason",
            "notice",
            "summarised",
            "input_tokens",
            "output_tokens",
        ]


class ConversationSerializer(serializers.ModelSerializer):
    model_id = serializers.IntegerField(allow_null=True)
    messages = MessageSerializer(many=True)

    class Meta:
        model = Conversation
        fields = ["id", "title", "model_id", "messages"]
