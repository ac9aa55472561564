from django.db import migrations


def truncate_trigger(apps, schema_editor):
    """TRUNCATE empties a table without a row's DELETE, so the row trigger of 0007 never sees
    it: a statement trigger refuses it. A superuser is let through: nothing binds it (it may
    disable any trigger, or skip them all with session_replication_role), and Django's test
    flush truncates every table. SQLite has no TRUNCATE."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE FUNCTION llmadmin_usage_record_not_truncated() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
        "RAISE EXCEPTION 'usage records are never changed or deleted'; END IF; "
        "RETURN NULL; END $$"
    )
    schema_editor.execute(
        "CREATE TRIGGER llmadmin_usage_record_not_truncated BEFORE TRUNCATE "
        "ON llmadmin_usagerecord FOR EACH STATEMENT "
        "EXECUTE FUNCTION llmadmin_usage_record_not_truncated()"
    )


def drop_truncate_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "DROP TRIGGER IF EXISTS llmadmin_usage_record_not_truncated ON llmadmin_usagerecord"
    )
    schema_editor.execute("DROP FUNCTION IF EXISTS llmadmin_usage_record_not_truncated()")


class Migration(migrations.Migration):
    dependencies = [
        ("llmadmin", "0008_estimated_costs"),
    ]

    operations = [
        migrations.RunPython(truncate_trigger, drop_truncate_trigger),
    ]
