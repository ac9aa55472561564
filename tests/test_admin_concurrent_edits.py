"""Two admins editing the same model or provider: a form loaded before the other's save is
refused, says what changed and keeps what was typed."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from llmadmin.models import LLMModel, Provider
from tests.admin_forms import form_as_loaded, form_as_shown
from tests.browser import log_in_as_admin
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

KEY = "sk-ant-CONCURRENT-first-0001"
OTHER_KEY = "sk-ant-CONCURRENT-second-0002"


@pytest.fixture
def other_admin() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("other-admin"))
    return client


def model_url(model: LLMModel) -> str:
    return reverse("admin:llmadmin_llmmodel_change", args=[model.pk])


def provider_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_change", args=[provider.pk])


def refusal(kind: str, labels: str) -> str:
    return (
        f"This {kind} was changed by someone else since you opened it ({labels}). Nothing was "
        "saved; what you typed is kept below: review it against the change and save again."
    )


# (what the other admin saves meanwhile, given a group; how the refusal names it)
OTHER_MODEL_CHANGES = [
    pytest.param(lambda group: {"context_limit": "100000"}, "Context limit", id="a field"),
    pytest.param(
        lambda group: {"restricted": "on", "allowed_groups": [str(group.pk)]},
        "Only for the groups and users below, Groups",
        id="who may use it",
    ),
]


@pytest.mark.parametrize(("other_change", "labels"), OTHER_MODEL_CHANGES)
def test_a_model_form_loaded_before_another_admins_save_is_refused(
    admin_client, other_admin, other_change, labels
):
    model = LLMModelFactory(display_name="Sonnet", context_limit=200_000)
    other_change = other_change(Group.objects.create(name="backend"))
    mine = form_as_loaded(admin_client, model_url(model), display_name="My Sonnet")
    theirs = form_as_loaded(other_admin, model_url(model), **other_change)
    assert other_admin.post(model_url(model), theirs).status_code == 302
    saved = form_as_loaded(other_admin, model_url(model))

    response = admin_client.post(model_url(model), mine)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [refusal("model", labels)]
    assert form["display_name"].value() == "My Sonnet"
    assert form_as_loaded(admin_client, model_url(model)) == saved  # nothing overwritten
    # Saved again as reviewed, the form now carries the version stored.
    assert admin_client.post(model_url(model), form_as_shown(form)).status_code == 302
    assert LLMModel.objects.get(pk=model.pk).display_name == "My Sonnet"


def test_a_model_form_reloaded_after_another_admins_save_saves(admin_client, other_admin):
    model = LLMModelFactory(display_name="Sonnet", context_limit=200_000)
    theirs = form_as_loaded(other_admin, model_url(model), max_output_tokens="4096")
    assert other_admin.post(model_url(model), theirs).status_code == 302

    mine = form_as_loaded(admin_client, model_url(model), display_name="My Sonnet")

    assert admin_client.post(model_url(model), mine).status_code == 302
    model.refresh_from_db()
    assert (model.display_name, model.max_output_tokens) == ("My Sonnet", 4096)


def test_a_provider_form_loaded_before_another_admins_new_key_is_refused(admin_client, other_admin):
    provider = ProviderFactory(anthropic=True, api_key=KEY)
    mine = form_as_loaded(admin_client, provider_url(provider), enabled=None)
    theirs = form_as_loaded(other_admin, provider_url(provider), api_key=OTHER_KEY)
    assert other_admin.post(provider_url(provider), theirs).status_code == 302

    response = admin_client.post(provider_url(provider), mine)

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors() == [refusal("provider", "API key")]
    assert form["enabled"].value() is False
    assert KEY not in response.text
    assert OTHER_KEY not in response.text
    provider.refresh_from_db()
    assert (provider.enabled, provider.api_key) == (True, OTHER_KEY)
    assert admin_client.post(provider_url(provider), form_as_shown(form)).status_code == 302
    provider.refresh_from_db()
    assert (provider.enabled, provider.api_key) == (False, OTHER_KEY)


def test_a_connection_test_does_not_make_the_page_stale(admin_client):
    with serve(FakeProvider("anthropic", KEY)) as server:
        provider = ProviderFactory(anthropic=True, api_key=KEY, base_url=server.url)
        mine = form_as_loaded(admin_client, provider_url(provider), enabled=None)
        test_url = reverse("admin:llmadmin_provider_test_connection", args=[provider.pk])
        answer = admin_client.post(test_url, mine, HTTP_ACCEPT="application/json")
        assert answer.json()["level"] == "success"

    assert admin_client.post(provider_url(provider), mine).status_code == 302
    provider.refresh_from_db()
    assert (provider.enabled, provider.check_status) == (False, "verified")


@pytest.mark.django_db(transaction=True)
def test_a_stale_model_page_in_a_browser_is_refused_then_saved_as_reviewed(page, asgi_server):
    model = LLMModelFactory(display_name="Sonnet", context_limit=200_000)
    log_in_as_admin(page, asgi_server, model_url(model))
    page.fill("#id_display_name", "My Sonnet")
    model.context_limit = 100_000  # saved meanwhile by another admin
    model.save()

    page.click("input[name=_save]")

    expect(page.locator(".errorlist.nonfield")).to_have_text(refusal("model", "Context limit"))
    expect(page.locator("#id_display_name")).to_have_value("My Sonnet")
    assert LLMModel.objects.get(pk=model.pk).display_name == "Sonnet"
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    model.refresh_from_db()
    assert model.display_name == "My Sonnet"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_saves_of_one_model_at_the_same_moment_keep_one_and_refuse_the_other(
    admin_client, other_admin
):
    model = LLMModelFactory(display_name="Sonnet", context_limit=200_000)
    forms = [
        (admin_client, form_as_loaded(admin_client, model_url(model), display_name="Mine")),
        (other_admin, form_as_loaded(other_admin, model_url(model), context_limit="100000")),
    ]
    statuses: list[int] = []

    def save(client: Client, data: dict[str, object]) -> None:
        try:
            statuses.append(client.post(model_url(model), data).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=save, args=form) for form in forms]
    # Both saves start while the row is locked here, and queue up on it.
    with transaction.atomic():
        LLMModel.objects.select_for_update().get(pk=model.pk)
        for thread in threads:
            thread.start()
        until = time.monotonic() + 10
        while waiting_on_a_lock() < 2 and time.monotonic() < until:
            time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(statuses) == [200, 302]
    model.refresh_from_db()
    assert (model.display_name, model.context_limit) in [("Mine", 200_000), ("Sonnet", 100_000)]


def waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]
