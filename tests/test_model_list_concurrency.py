"""The model list under concurrent requests and changes: threads on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

import chat.model_list
from llmadmin.models import LLMModel
from tests.factories import LLMModelFactory, ProviderFactory

THREADS = 16
MODELS = reverse("api-models")

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


def logged_in(username: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def offered(client: Client) -> list[str]:
    payload = client.get(MODELS).json()
    return [model["display_name"] for group in payload["groups"] for model in group["models"]]


def test_after_a_change_busy_threads_wait_for_one_rebuild(monkeypatch):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="First")
    User.objects.create_user("dev", password="pw-for-the-threads")
    logged_in("dev").get(MODELS)  # this process has a configuration
    LLMModelFactory(provider=provider, display_name="Second")  # and now it is stale
    builds: list[str] = []
    real_next = chat.model_list.next_configuration

    def counted_next(
        current: chat.model_list.Configuration | None, fingerprint: str
    ) -> chat.model_list.Configuration:
        builds.append(fingerprint)
        return real_next(current, fingerprint)

    monkeypatch.setattr(chat.model_list, "next_configuration", counted_next)
    start, etags, errors = threading.Barrier(THREADS), [], []

    def request() -> None:
        try:
            client = logged_in("dev")
            start.wait()
            response = client.get(MODELS)
            etags.append(response["ETag"])
            assert [m["display_name"] for m in response.json()["groups"][0]["models"]] == [
                "First",
                "Second",
            ]
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=request) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(builds) == 1
    assert len(set(etags)) == 1 and len(etags) == THREADS


def test_a_change_committed_later_is_never_hidden_by_one_stamped_later():
    # A removes the team from "Secret" and stays open; B saves "Open" meanwhile. B must wait
    # for A (the configuration token's row lock), so no list is ever built from B's change
    # alone and then kept once A commits.
    provider = ProviderFactory(anthropic=True)
    team = Group.objects.create(name="team")
    secret = LLMModelFactory(provider=provider, display_name="Secret", restricted=True)
    secret.allowed_groups.add(team)
    open_model = LLMModelFactory(provider=provider, display_name="Open")
    User.objects.create_user("dev", password="pw-for-the-threads").groups.add(team)
    assert offered(logged_in("dev")) == ["Open", "Secret"]
    removed, commit_a = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def change_a() -> None:
        try:
            with transaction.atomic():
                LLMModel.objects.get(pk=secret.pk).allowed_groups.remove(team)
                removed.set()
                commit_a.wait(timeout=30)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def change_b() -> None:
        try:
            model = LLMModel.objects.get(pk=open_model.pk)
            model.display_name = "Open renamed"
            model.save()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    a = threading.Thread(target=change_a)
    a.start()
    assert removed.wait(timeout=30)
    b = threading.Thread(target=change_b)
    b.start()
    b.join(timeout=1)
    waited_for_a = b.is_alive()
    # A developer asks now: neither change is committed, and the list is as before.
    assert offered(logged_in("dev")) == ["Open", "Secret"]
    commit_a.set()
    a.join(timeout=30)
    b.join(timeout=30)

    assert errors == []
    assert waited_for_a
    assert offered(logged_in("dev")) == ["Open renamed"]
