"""The usage and budget models, moved from llmadmin (its 0015): created in this app's state
only, on the tables they had (Meta.db_table), rows, triggers and grants included. Their content
types are renamed rather than created, so the permissions granted on them and the audit
entries naming them keep pointing at the same rows."""

import django.contrib.auth.models
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import migrations, models


MOVED = (
    "budgetalert",
    "dailyusage",
    "developerbudget",
    "groupbudget",
    "modelprice",
    "usagerecord",
    "userbudget",
)


def content_types_from(old_label, new_label):
    def rename(apps, schema_editor):
        content_type = apps.get_model("contenttypes", "ContentType")
        rows = content_type.objects.using(schema_editor.connection.alias)
        # A type the new label already has (made by a flush, say) keeps its row.
        taken = rows.filter(app_label=new_label, model__in=MOVED).values_list("model", flat=True)
        rows.filter(app_label=old_label, model__in=MOVED).exclude(model__in=list(taken)).update(
            app_label=new_label
        )
        ContentType.objects.clear_cache()

    return rename


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('llmadmin', '0015_billing_models_to_billing_app'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='DeveloperBudget',
                    fields=[
                    ],
                    options={
                        'verbose_name': 'developer budget',
                        'proxy': True,
                        'indexes': [],
                        'constraints': [],
                    },
                    bases=('auth.user',),
                    managers=[
                        ('objects', django.contrib.auth.models.UserManager()),
                    ],
                ),
                migrations.CreateModel(
                    name='BudgetAlert',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('month', models.DateField(help_text='The first day of the budget month.')),
                        ('level', models.PositiveSmallIntegerField(choices=[(85, '85 % spent'), (100, 'Spent')])),
                        ('sent_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'llmadmin_budgetalert',
                        'constraints': [models.UniqueConstraint(fields=('user', 'month', 'level'), name='one_alert_per_level')],
                    },
                ),
                migrations.CreateModel(
                    name='DailyUsage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('day', models.DateField()),
                        ('provider_type', models.CharField(max_length=32)),
                        ('calls', models.PositiveIntegerField(default=0)),
                        ('uncosted_calls', models.PositiveIntegerField(default=0)),
                        ('long_context_calls', models.PositiveIntegerField(default=0)),
                        ('input_tokens', models.BigIntegerField(default=0)),
                        ('output_tokens', models.BigIntegerField(default=0)),
                        ('cache_read_tokens', models.BigIntegerField(default=0)),
                        ('cache_write_tokens', models.BigIntegerField(default=0)),
                        ('reasoning_tokens', models.BigIntegerField(default=0)),
                        ('cost', models.DecimalField(decimal_places=10, default=0, max_digits=20, verbose_name='cost')),
                        ('group', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='auth.group')),
                        ('model', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='llmadmin.llmmodel')),
                        ('user', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'usage',
                        'verbose_name_plural': 'usage',
                        'db_table': 'llmadmin_dailyusage',
                        'indexes': [models.Index(fields=['user', 'day'], name='daily_usage_of_user'), models.Index(fields=['day'], name='daily_usage_by_day')],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('group__isnull', False)), fields=('day', 'user', 'model', 'group'), name='one_daily_usage_per_group'), models.UniqueConstraint(condition=models.Q(('group__isnull', True)), fields=('day', 'user', 'model'), name='one_daily_usage_without_group')],
                    },
                ),
                migrations.CreateModel(
                    name='GroupBudget',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('monthly_allowance', models.DecimalField(decimal_places=2, help_text="USD each member may spend per calendar month. A developer in several groups gets the highest of their groups' allowances.", max_digits=12, validators=[django.core.validators.MinValueValidator(0)], verbose_name='monthly allowance per member')),
                        ('group', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='budget', to='auth.group')),
                    ],
                    options={
                        'db_table': 'llmadmin_groupbudget',
                        'ordering': ['group__name'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('monthly_allowance__gte', 0)), name='group_allowance_not_negative')],
                    },
                ),
                migrations.CreateModel(
                    name='ModelPrice',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('effective_from', models.DateTimeField(default=django.utils.timezone.now)),
                        ('input_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='input price')),
                        ('output_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='output price')),
                        ('cache_read_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='cache read price')),
                        ('cache_write_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='cache write price')),
                        ('long_context_input_price', models.DecimalField(blank=True, decimal_places=6, help_text="USD per 1M tokens for the whole of a call whose prompt is over 200k tokens (272k for OpenAI's GPT-5.4 and 5.5). All four empty: such calls cost the prices above.", max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='long-context input price')),
                        ('long_context_output_price', models.DecimalField(blank=True, decimal_places=6, help_text="USD per 1M tokens for the whole of a call whose prompt is over 200k tokens (272k for OpenAI's GPT-5.4 and 5.5). All four empty: such calls cost the prices above.", max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='long-context output price')),
                        ('long_context_cache_read_price', models.DecimalField(blank=True, decimal_places=6, help_text="USD per 1M tokens for the whole of a call whose prompt is over 200k tokens (272k for OpenAI's GPT-5.4 and 5.5). All four empty: such calls cost the prices above.", max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='long-context cache read price')),
                        ('long_context_cache_write_price', models.DecimalField(blank=True, decimal_places=6, help_text="USD per 1M tokens for the whole of a call whose prompt is over 200k tokens (272k for OpenAI's GPT-5.4 and 5.5). All four empty: such calls cost the prices above.", max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='long-context cache write price')),
                        ('model', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='price_history', to='llmadmin.llmmodel')),
                    ],
                    options={
                        'db_table': 'llmadmin_modelprice',
                        'ordering': ['model', '-effective_from', '-pk'],
                        'indexes': [models.Index(fields=['model', '-effective_from'], name='price_in_effect')],
                    },
                ),
                migrations.CreateModel(
                    name='UsageRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('called_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('day', models.DateField()),
                        ('provider_type', models.CharField(max_length=32)),
                        ('model_identifier', models.CharField(max_length=200)),
                        ('kind', models.CharField(choices=[('chat', 'Chat answer'), ('summary', 'Summary of older messages')], default='chat', max_length=16)),
                        ('input_tokens', models.PositiveIntegerField(blank=True, null=True, verbose_name='input tokens')),
                        ('output_tokens', models.PositiveIntegerField(blank=True, null=True, verbose_name='output tokens')),
                        ('cache_read_tokens', models.PositiveIntegerField(blank=True, null=True, verbose_name='cache read tokens')),
                        ('cache_write_tokens', models.PositiveIntegerField(blank=True, null=True, verbose_name='cache write tokens')),
                        ('reasoning_tokens', models.PositiveIntegerField(blank=True, null=True, verbose_name='reasoning tokens')),
                        ('input_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='input price')),
                        ('output_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='output price')),
                        ('cache_read_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='cache read price')),
                        ('cache_write_price', models.DecimalField(blank=True, decimal_places=6, help_text='USD per 1M tokens. Empty means unpriced, which is not the same as 0 (free).', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)], verbose_name='cache write price')),
                        ('price_tier', models.CharField(choices=[('base', 'Base'), ('long_context', 'Long context')], default='base', max_length=16)),
                        ('pricing', models.CharField(choices=[('priced', 'Priced'), ('unpriced', 'Unpriced'), ('estimated', 'Estimated'), ('unreported', 'No token counts')], max_length=16)),
                        ('cost', models.DecimalField(blank=True, decimal_places=10, max_digits=20, null=True, verbose_name='cost')),
                        ('group', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='auth.group')),
                        ('model', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='llmadmin.llmmodel')),
                        ('user', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'usage record',
                        'db_table': 'llmadmin_usagerecord',
                        'ordering': ['-called_at', '-pk'],
                        'indexes': [models.Index(fields=['user', 'day'], name='usage_of_user')],
                        'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('cost__isnull', False), ('pricing__in', ['priced', 'estimated'])), models.Q(models.Q(('pricing__in', ['priced', 'estimated']), _negated=True), ('cost__isnull', True)), _connector='OR'), name='cost_only_when_priced')],
                    },
                ),
                migrations.CreateModel(
                    name='UserBudget',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('monthly_allowance', models.DecimalField(blank=True, decimal_places=2, help_text='USD this developer may spend per calendar month, whatever their groups allow (higher or lower). Empty: no limit.', max_digits=12, null=True, validators=[django.core.validators.MinValueValidator(0)])),
                        ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='budget', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'developer budget override',
                        'db_table': 'llmadmin_userbudget',
                        'constraints': [models.CheckConstraint(condition=models.Q(('monthly_allowance__isnull', True), ('monthly_allowance__gte', 0), _connector='OR'), name='user_allowance_not_negative')],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            content_types_from("llmadmin", "billing"), content_types_from("billing", "llmadmin")
        ),
    ]
