"""No plaintext key in logs, error pages, error reports or the production settings check."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.views.debug import ExceptionReporter

from llmadmin.models import Provider
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-LEAKCHECK-7c1e9a0b4d"
MARKER = "LEAKCHECK"


@pytest.fixture
def all_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_no_log_record_holds_a_key_while_keys_are_set_verified_and_listed(
    all_logs, admin_client, settings, monkeypatch, tmp_path
):
    settings.PROVIDER_READ_TIMEOUT = 0.5
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    call_command("seed_defaults", "--keys-from-env", stdout=io.StringIO())
    with (
        serve(FakeProvider("anthropic", KEY)) as good,
        serve(FakeProvider("google", "sk-other")) as rejecting,
        serve(FakeProvider("openai", KEY, mode="error500")) as failing,
    ):
        anthropic = Provider.objects.get(type="anthropic")
        change = reverse("admin:llmadmin_provider_change", args=[anthropic.pk])
        admin_client.post(
            change,
            {
                "name": anthropic.name,
                "slug": anthropic.slug,
                "api_key": KEY,
                "base_url": good.url,
                "enabled": "on",
                "models-TOTAL_FORMS": "0",
                "models-INITIAL_FORMS": str(anthropic.models.count()),
            },
        )
        admin_client.post(change, {"api_key": f" {KEY}", "enabled": "on"})  # refused
        Provider.objects.filter(type="google").update(base_url=rejecting.url)
        Provider.objects.filter(type="openai").update(base_url=f"{failing.url}/v1")
        call_command(
            "set_provider_key", "google", stdin=io.StringIO(KEY + "\n"), stdout=io.StringIO()
        )
        with pytest.raises(SystemExit):
            call_command("check_providers", stdout=io.StringIO())
        admin_client.get(
            reverse("admin:llmadmin_llmmodel_remote_models"), {"provider": anthropic.pk}
        )
        admin_client.get(reverse("api-models"))
        call_command("rotate_keys", stdout=io.StringIO())
        call_command("export_config", "--output", str(tmp_path / "x.yaml"), stderr=io.StringIO())

    # The connection tests were logged (one per provider with a key), so logging was captured.
    assert len([r for r in all_logs.records if r.name == "llmadmin.services"]) >= 3
    assert MARKER not in all_logs.text
    assert all(MARKER not in str(record.args) for record in all_logs.records)


def crash_on_save(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Provider, "save", crash)


def post_a_key_that_fails_to_save(monkeypatch, django_user_model):
    """An admin posts a key and the save crashes: the 500 page Django answers with."""
    provider = ProviderFactory(anthropic=True, no_key=True)
    client = Client(raise_request_exception=False)
    client.force_login(django_user_model.objects.create_superuser("root"))
    crash_on_save(monkeypatch)
    return client.post(
        reverse("admin:llmadmin_provider_change", args=[provider.pk]),
        {
            "name": provider.name,
            "slug": provider.slug,
            "api_key": KEY,
            "enabled": "on",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )


def test_a_production_error_page_holds_no_key(monkeypatch, all_logs, django_user_model):
    response = post_a_key_that_fails_to_save(monkeypatch, django_user_model)

    assert response.status_code == 500
    assert MARKER not in response.content.decode()
    assert "Internal Server Error" in all_logs.text
    assert MARKER not in all_logs.text


def test_the_debug_error_page_holds_no_key(monkeypatch, settings, django_user_model):
    """scripts/run turns DEBUG on: its error page must hide the key all the same."""
    settings.DEBUG = True

    response = post_a_key_that_fails_to_save(monkeypatch, django_user_model)

    assert response.status_code == 500
    assert "database went away" in response.content.decode()  # the technical page itself
    assert MARKER not in response.content.decode()


def test_an_error_report_for_administrators_hides_the_posted_key(monkeypatch, rf):
    """What AdminEmailHandler would mail: the request's POST, frames and settings."""
    from django.contrib import admin as django_admin
    from django.contrib.auth.models import User

    from llmadmin.admin.providers import ProviderAdmin

    provider = ProviderFactory(anthropic=True, no_key=True)
    request = rf.post(
        f"/admin/llmadmin/provider/{provider.pk}/change/",
        {
            "name": provider.name,
            "slug": provider.slug,
            "api_key": KEY,
            "enabled": "on",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )
    request.user = User.objects.create_superuser("root")
    request._dont_enforce_csrf_checks = True
    request.session = {}
    crash_on_save(monkeypatch)
    model_admin = ProviderAdmin(Provider, django_admin.site)

    with pytest.raises(RuntimeError) as error:
        model_admin.change_view(request, str(provider.pk))

    reporter = ExceptionReporter(request, error.type, error.value, error.tb)
    assert MARKER not in reporter.get_traceback_text()
    assert MARKER not in reporter.get_traceback_html()


def test_an_error_report_hides_a_key_in_a_clients_frames(settings):
    """A crash inside a provider call: the key is in the client's state, not in the report."""
    settings.PROVIDER_CONNECT_TIMEOUT = 0.5
    provider = ProviderFactory(openai=True, api_key=KEY, base_url="http://127.0.0.1:9/v1")
    client = provider.client()

    try:
        client.verify()
    except Exception as error:
        reporter = ExceptionReporter(None, type(error), error, error.__traceback__)
        assert MARKER not in reporter.get_traceback_text()
        assert MARKER not in reporter.get_traceback_html()
    else:
        pytest.fail("nothing listens on port 9")


PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a" * 20 + "production-secret-key-with-enough-entropy-1234567890",
    "SALT_KEY": "production-salt",
    "ALLOWED_HOSTS": "llm.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


def deployment_check(**overrides: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{key: value for key, value in os.environ.items() if key not in PRODUCTION},
        **PRODUCTION,
        **overrides,
        "ENV_FILE": "/nonexistent/.env",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_documented_production_settings_pass_the_deployment_check():
    result = deployment_check()

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_deployment_check_fails_without_https_settings():
    result = deployment_check(SECURE_HSTS_SECONDS="0")

    assert result.returncode != 0
    assert "security.W004" in result.stderr


def test_the_models_api_never_shows_a_key_to_developers(client, django_user_model):
    LLMModelFactory(provider=ProviderFactory(anthropic=True, api_key=KEY))
    client.force_login(django_user_model.objects.create_user("dev"))

    assert MARKER not in client.get(reverse("api-models")).content.decode()
    assert MARKER not in client.get(reverse("agents")).content.decode()


def crash_inside_the_orm(monkeypatch):
    """A database error deep in the ORM's save, where the plaintext secrets are prepared."""
    from django.db.models import Model

    def crash(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Model, "_do_update", crash)
    monkeypatch.setattr(Model, "_do_insert", crash)


@pytest.mark.parametrize(
    "view",
    [
        pytest.param("change_view", id="saving the provider page"),
        pytest.param("test_connection_view", id="the Test connection button"),
    ],
)
def test_an_error_report_hides_secrets_in_the_orms_frames_and_the_post(monkeypatch, rf, view):
    """A crash below the provider's save: its frames hold the plaintext (Django's pre_save)."""
    from django.contrib import admin as django_admin
    from django.contrib.auth.models import User

    from llmadmin.admin.providers import ProviderAdmin

    provider = ProviderFactory(bedrock=True, region="us-east-1", no_key=True)
    secret, token = f"{MARKER}-secret-access-key", f"{MARKER}-session-token"
    request = rf.post(
        f"/admin/llmadmin/provider/{provider.pk}/",
        {
            "name": provider.name,
            "slug": provider.slug,
            "auth": "aws_keys",
            "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "aws_secret_access_key": secret,
            "aws_session_token": token,
            "api_key": KEY,
            "region": "us-east-1",
            "enabled": "on",
            "models-TOTAL_FORMS": "0",
            "models-INITIAL_FORMS": "0",
        },
    )
    request.user = User.objects.create_superuser("root")
    request._dont_enforce_csrf_checks = True
    request.session = {}
    model_admin = ProviderAdmin(Provider, django_admin.site)
    if view == "change_view":
        crash_inside_the_orm(monkeypatch)
        call = lambda: model_admin.change_view(request, str(provider.pk))  # noqa: E731
    else:
        provider.auth, provider.aws_access_key_id = "aws_keys", "AKIAIOSFODNN7EXAMPLE"
        provider.aws_secret_access_key = secret
        provider.save()
        crash_inside_the_orm(monkeypatch)
        call = lambda: model_admin.test_connection_view(request, provider.pk)  # noqa: E731

    with pytest.raises(RuntimeError) as error:
        call()

    # From the view down: this test's own frame holds the secrets it posted.
    reporter = ExceptionReporter(request, error.type, error.value, error.tb.tb_next)
    assert MARKER not in reporter.get_traceback_text()
    assert MARKER not in reporter.get_traceback_html()


def test_an_error_report_hides_a_backup_keys_posted_key_and_its_frames(monkeypatch, rf):
    """A crash below a backup key's save, on the provider's page: its row's key is posted
    under the row's name (backup_keys-0-key), and in the ORM's frames."""
    from django.contrib import admin as django_admin
    from django.contrib.auth.models import User

    from llmadmin.admin.providers import ProviderAdmin
    from llmadmin.models import BackupKey

    provider = ProviderFactory(anthropic=True, api_key="sk-own-key-0001")
    backup_key = f"sk-{MARKER}-backup-key"
    request = rf.post(
        f"/admin/llmadmin/provider/{provider.pk}/change/",
        {
            "name": provider.name,
            "slug": provider.slug,
            "enabled": "on",
            "backup_keys-TOTAL_FORMS": "1",
            "backup_keys-INITIAL_FORMS": "0",
            "backup_keys-0-name": "Team A",
            "backup_keys-0-key": backup_key,
        },
    )
    request.user = User.objects.create_superuser("root")
    request._dont_enforce_csrf_checks = True
    request.session = {}

    def crash(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(BackupKey, "_do_insert", crash)
    model_admin = ProviderAdmin(Provider, django_admin.site)

    with pytest.raises(RuntimeError) as error:
        model_admin.change_view(request, str(provider.pk))

    reporter = ExceptionReporter(request, error.type, error.value, error.tb.tb_next)
    assert "backup_keys-0-name" in reporter.get_traceback_text()  # the post is in the report
    assert MARKER not in reporter.get_traceback_text()
    assert MARKER not in reporter.get_traceback_html()
