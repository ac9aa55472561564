"""Output shapes of the model list API: used to build it and to document it."""

from __future__ import annotations

from rest_framework import serializers

from llmadmin.models import LLMModel


class ChatModelSerializer(serializers.ModelSerializer):
    provider_type = serializers.CharField(source="provider.type")
    provider_label = serializers.CharField(source="provider.provider_type.label")

    class Meta:
        model = LLMModel
        fields = [
            "id",
            "identifier",
            "display_name",
            "provider_type",
            "provider_label",
            "context_limit",
            "is_default",
        ]


class ProviderGroupSerializer(serializers.Serializer):
    provider_type = serializers.CharField()
    provider_label = serializers.CharField()
    models = ChatModelSerializer(many=True)


class UnavailableProviderSerializer(serializers.Serializer):
    provider_type = serializers.CharField()
    provider_label = serializers.CharField()
    reason = serializers.ChoiceField(
        choices=["provider_disabled", "missing_key", "key_unreadable", "key_rejected"],
        help_text="Why the provider's enabled models are not offered.",
    )
    model_count = serializers.IntegerField(help_text="Enabled models this provider has.")


class ModelListSerializer(serializers.Serializer):
    default_model_id = serializers.IntegerField(
        allow_null=True, help_text="The admin's default model, when it is available."
    )
    groups = ProviderGroupSerializer(
        many=True, help_text="Available models by provider, in registry order."
    )
    unavailable_providers = UnavailableProviderSerializer(
        many=True,
        help_text="Providers with enabled models that are not available, and why.",
    )
