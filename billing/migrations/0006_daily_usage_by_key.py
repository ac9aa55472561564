"""SQLite only: an index of the daily sums in the dashboard's key order, holding every column
its sums by key read, so that SQLite takes each key's days in order from it instead of reading
the range's rows and sorting them (billing.report.key_sums names it: SQLite's planner would not
choose it). PostgreSQL hashes the keys in memory (0004's statistics): nothing to do there."""

from django.db import migrations

INDEX = "daily_usage_by_key"
COLUMNS = (
    "model_id, user_id, group_id, client_product, day, provider_id, provider_type, calls, "
    "uncosted_calls, long_context_calls, input_tokens, output_tokens, cost"
)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {INDEX} ON llmadmin_dailyusage ({COLUMNS})")


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_developer_limits'),
    ]

    operations = [migrations.RunPython(create_index, drop_index)]
