"""The registry of provider types: one more type needs no migration and no seeding list."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from django.core.management import call_command

from llmadmin.models import LLMModel, Provider
from llmadmin.providers import PROVIDER_TYPES
from llmadmin.providers.openai import OPENAI_COMPATIBLE
from llmadmin.services import seed_defaults

pytestmark = pytest.mark.django_db


@pytest.fixture
def extra_type(monkeypatch):
    """One more type in the registry, with no models to seed."""
    provider_type = replace(OPENAI_COMPATIBLE, slug="extra", label="Extra", seeded_models=())
    monkeypatch.setitem(PROVIDER_TYPES, provider_type.slug, provider_type)
    return provider_type


def test_a_type_added_to_the_registry_is_a_valid_provider_type_without_a_migration(extra_type):
    provider = Provider(type=extra_type.slug, name="Extra")

    provider.full_clean()
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)

    assert provider.provider_type == extra_type
    assert "No changes detected" in out.getvalue()


def test_seed_gives_a_type_without_seeded_models_none(extra_type):
    Provider.objects.create(type=extra_type.slug, name="Extra", slug="extra")

    report = seed_defaults()

    assert "Extra" in report.catalogs_seeded
    assert not LLMModel.objects.filter(provider__type=extra_type.slug).exists()
    assert Provider.objects.get(type=extra_type.slug).catalog_seeded


def test_one_type_names_the_seeded_default_among_its_seeded_models():
    defaults = [
        (slug, provider_type.seeded_default)
        for slug, provider_type in PROVIDER_TYPES.items()
        if provider_type.seeded_default
    ]

    assert defaults == [("anthropic", "claude-sonnet-4-6")]
    assert "claude-sonnet-4-6" in PROVIDER_TYPES["anthropic"].seeded_models
