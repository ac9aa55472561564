"""Several accounts of one provider type: each provider row becomes its type's first account,
named after the type and slugged by it, so that everything hanging on it (keys, models, the
default, access lists, prices, the ledger) stays as it was."""

import django.core.validators
import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Min

import llmadmin.fields
import llmadmin.providers


def name_accounts(apps, schema_editor):
    provider_model = apps.get_model("llmadmin", "Provider")
    labels = dict(llmadmin.providers.provider_type_choices())
    for provider in provider_model.objects.all():
        provider_model.objects.filter(pk=provider.pk).update(
            name=labels.get(provider.type, provider.type), slug=provider.type
        )


def refuse_two_accounts_of_a_type(apps, schema_editor):
    """Before accounts a type had one row: going back needs the others gone first."""
    provider_model = apps.get_model("llmadmin", "Provider")
    firsts = set(
        provider_model.objects.values("type").annotate(first=Min("pk")).values_list("first", flat=True)
    )
    others = provider_model.objects.exclude(pk__in=firsts).order_by("pk")
    names = ", ".join(repr(name) for name in others.values_list("name", flat=True))
    if names:
        raise RuntimeError(
            f"Before provider accounts each type had one row: delete the accounts {names} "
            "(or move what you need onto their type's first account) before migrating back."
        )


class Migration(migrations.Migration):
    dependencies = [
        ("llmadmin", "0016_configuration_change_log"),
    ]

    operations = [
        migrations.AddField(
            model_name="provider",
            name="name",
            field=models.CharField(
                default="",
                help_text="What admins and developers call this account, e.g. Internal vLLM or "
                "Azure EU.",
                max_length=100,
                validators=[
                    llmadmin.fields.validate_no_surrounding_whitespace,
                    llmadmin.fields.validate_no_hidden_characters,
                ],
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="provider",
            name="slug",
            # Not unique yet: each row gets its own slug first (below).
            field=models.CharField(default="", max_length=50),
            preserve_default=False,
        ),
        migrations.RunPython(name_accounts, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="provider",
            name="slug",
            field=models.CharField(
                error_messages={"unique": "Another provider account has this slug."},
                blank=True,
                help_text="Names this account's models in the gateway where identifiers repeat "
                "(slug/identifier). Empty: made from the name. Changing it renames them for "
                "clients.",
                max_length=50,
                unique=True,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[a-z0-9][a-z0-9_-]*\\Z",
                        "Enter lowercase letters, digits, hyphens or underscores, beginning "
                        "with a letter or digit.",
                    )
                ],
            ),
        ),
        migrations.AlterField(
            model_name="provider",
            name="type",
            field=models.CharField(
                choices=llmadmin.providers.provider_type_choices, max_length=32
            ),
        ),
        migrations.AlterModelOptions(name="provider", options={"ordering": ["type", "pk"]}),
        migrations.AlterModelOptions(
            name="llmmodel",
            options={
                "ordering": ["provider__type", "provider", "display_name"],
                "verbose_name": "model",
            },
        ),
        migrations.AddConstraint(
            model_name="provider",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"),
                name="unique_provider_name",
                violation_error_code="duplicate_name",
                violation_error_message="Another provider account has this name.",
            ),
        ),
        # Unapplied first: before the unique type comes back.
        migrations.RunPython(migrations.RunPython.noop, refuse_two_accounts_of_a_type),
    ]
