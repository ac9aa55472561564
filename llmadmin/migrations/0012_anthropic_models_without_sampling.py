"""Anthropic's API version 2026-10-21, which the client sends, refuses temperature, top P and
top K (llmadmin/providers/anthropic.py): a model of an Anthropic provider that kept one would
fail every chat turn, so they are cleared. Bedrock's models keep theirs: Converse takes them."""

from django.db import migrations
from django.db.models import Q
from django.utils import timezone


def clear_sampling(apps, schema_editor):
    LLMModel = apps.get_model("llmadmin", "LLMModel")
    sampled = Q(temperature__isnull=False) | Q(top_p__isnull=False) | Q(top_k__isnull=False)
    # updated_at moves on: an admin form loaded before this change is refused as stale.
    LLMModel.objects.filter(sampled, provider__type="anthropic").update(
        temperature=None, top_p=None, top_k=None, updated_at=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [("llmadmin", "0011_long_context_prices")]

    operations = [migrations.RunPython(clear_sampling, migrations.RunPython.noop)]
