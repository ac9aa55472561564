"""A log of what each configuration change touched, so that processes update their model
lists incrementally (chat.model_list)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('llmadmin', '0015_billing_models_to_billing_app'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConfigurationChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token', models.UUIDField()),
                ('previous', models.UUIDField(null=True)),
                ('kind', models.CharField(choices=[('models', 'Models or their access lists'), ('providers', 'Providers'), ('everything', 'Anything')], max_length=16)),
                ('ids', models.JSONField(default=list)),
            ],
        ),
    ]
