"""The usage and budget models move to the billing app (billing 0001): removed from this app's
state only. Their tables, rows, triggers and grants stay as they are: billing names the same
tables (Meta.db_table)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('llmadmin', '0014_provider_type_choices_from_registry'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='budgetalert',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='dailyusage',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='dailyusage',
                    name='model',
                ),
                migrations.RemoveField(
                    model_name='dailyusage',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='groupbudget',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='modelprice',
                    name='model',
                ),
                migrations.RemoveField(
                    model_name='usagerecord',
                    name='group',
                ),
                migrations.RemoveField(
                    model_name='usagerecord',
                    name='model',
                ),
                migrations.RemoveField(
                    model_name='usagerecord',
                    name='user',
                ),
                migrations.RemoveField(
                    model_name='userbudget',
                    name='user',
                ),
                migrations.DeleteModel(
                    name='DeveloperBudget',
                ),
                migrations.DeleteModel(
                    name='BudgetAlert',
                ),
                migrations.DeleteModel(
                    name='DailyUsage',
                ),
                migrations.DeleteModel(
                    name='GroupBudget',
                ),
                migrations.DeleteModel(
                    name='ModelPrice',
                ),
                migrations.DeleteModel(
                    name='UsageRecord',
                ),
                migrations.DeleteModel(
                    name='UserBudget',
                ),
            ],
        ),
    ]
