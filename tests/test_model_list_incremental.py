"""The model list after changes: brought up to date from the change log, and always exactly what
a full rebuild gives."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction

import chat.model_list
from billing.models import UserBudget
from chat.model_list import budget_and_caps, cached_model_list, offered_model
from llmadmin.models import (
    KEPT_CHANGES,
    ConfigurationChange,
    ConfigurationVersion,
    LLMModel,
    Provider,
    configuration_changed,
)
from llmadmin.services import model_make_default, models_set_enabled
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup() -> dict[str, Any]:
    """Two providers (and a second account of one), restricted and open models, two teams,
    four developers."""
    anthropic, openai = ProviderFactory(anthropic=True), ProviderFactory(openai=True)
    anthropic_eu = ProviderFactory(anthropic=True, name="Anthropic EU")
    # Changes to the models of an unavailable provider change the counts the list gives.
    google = ProviderFactory(google=True, enabled=False)
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    developers = [User.objects.create_user(f"dev-{n}", password="pw") for n in range(4)]
    developers[0].groups.add(red)
    developers[1].groups.add(red, blue)
    developers[2].groups.add(blue)
    for n in range(12):
        model = LLMModelFactory(
            provider=[openai, anthropic, google][n % 3],
            display_name=f"Model {n % 5} {n}",
            restricted=n % 4 == 1,
            monthly_cap=Decimal("5.00") if n % 5 == 2 else None,
            is_default=n == 0,
        )
        if n % 4 == 1:
            model.allowed_groups.add(red if n % 8 == 1 else blue)
    LLMModel.objects.get(display_name="Model 4 9").allowed_users.add(developers[3])
    # The same identifiers as the first account's: the list tells them apart by account.
    for model in LLMModel.objects.filter(provider=anthropic):
        LLMModelFactory(provider=anthropic_eu, identifier=model.identifier)
    return {"groups": [red, blue], "developers": developers}


def any_model(rng: random.Random, **filters: Any) -> LLMModel:
    return rng.choice(list(LLMModel.objects.filter(**filters).order_by("pk")))


def saved(model: LLMModel, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(model, name, value)
    model.save()


def add_member(rng: random.Random, setup: dict[str, Any]) -> None:
    rng.choice(setup["developers"]).groups.add(rng.choice(setup["groups"]))


def remove_member(rng: random.Random, setup: dict[str, Any]) -> None:
    rng.choice(setup["developers"]).groups.remove(rng.choice(setup["groups"]))


def deleted_group(rng: random.Random, setup: dict[str, Any]) -> None:
    doomed = Group.objects.create(name=f"doomed-{uuid.uuid4()}")
    setup["developers"][0].groups.add(doomed)
    any_model(rng).allowed_groups.add(doomed)
    doomed.delete()


def deleted_user(rng: random.Random, setup: dict[str, Any]) -> None:
    doomed = User.objects.create_user(f"doomed-{uuid.uuid4()}", password="pw")
    any_model(rng).allowed_users.add(doomed)
    doomed.delete()


def any_account(rng: random.Random, *types: str) -> Provider:
    return rng.choice(list(Provider.objects.filter(type__in=types).order_by("pk")))


def toggled_provider(rng: random.Random, setup: dict[str, Any]) -> None:
    provider = any_account(rng, "anthropic", "openai")
    saved(provider, enabled=not provider.enabled)


def checked_provider(rng: random.Random, setup: dict[str, Any]) -> None:
    saved(any_account(rng, "anthropic"), check_reason=f"checked {rng.random()}")


def added_account(rng: random.Random, setup: dict[str, Any]) -> None:
    provider_type = rng.choice(["anthropic", "openai"])
    account = ProviderFactory(type=provider_type, name=f"{provider_type} {uuid.uuid4()}")
    LLMModelFactory(provider=account, display_name=f"Model {rng.randrange(6)} new")


# Each change, and whether the list follows it without a full rebuild.
CHANGES: dict[str, tuple[Callable[[random.Random, dict[str, Any]], Any], bool]] = {
    "enabled or disabled": (
        lambda rng, _: saved(m := any_model(rng), enabled=not m.enabled),
        True,
    ),
    "several enabled or disabled at once": (
        lambda rng, _: models_set_enabled(
            models=LLMModel.objects.filter(pk__in=[any_model(rng).pk, any_model(rng).pk]),
            enabled=rng.random() < 0.5,
        ),
        True,
    ),
    "renamed": (
        lambda rng, _: saved(any_model(rng), display_name=f"Model {rng.randrange(6)} renamed"),
        True,
    ),
    "cap changed": (
        lambda rng, _: saved(any_model(rng), monthly_cap=rng.choice([None, Decimal("1.50")])),
        True,
    ),
    "restricted or open": (
        lambda rng, _: saved(m := any_model(rng), restricted=not m.restricted),
        True,
    ),
    "a group listed": (
        lambda rng, setup: any_model(rng).allowed_groups.add(rng.choice(setup["groups"])),
        True,
    ),
    "a group unlisted": (
        lambda rng, setup: any_model(rng).allowed_groups.remove(rng.choice(setup["groups"])),
        True,
    ),
    "a developer listed": (
        lambda rng, setup: any_model(rng).allowed_users.add(rng.choice(setup["developers"])),
        True,
    ),
    "a list cleared": (lambda rng, _: any_model(rng).allowed_groups.clear(), True),
    "a member added to a team": (add_member, True),
    "a member removed from a team": (remove_member, True),
    "a listed group deleted": (deleted_group, True),
    "a listed user deleted": (deleted_user, True),
    "model added": (
        lambda rng, _: LLMModelFactory(
            provider=any_account(rng, "anthropic", "openai", "google"),
            display_name=f"Model {rng.randrange(6)} new",
        ),
        True,
    ),
    "model deleted": (lambda rng, _: any_model(rng).delete(), True),
    "default moved": (
        lambda rng, _: model_make_default(model=any_model(rng, enabled=True)),
        True,
    ),
    "provider checked": (checked_provider, True),
    "provider disabled or enabled": (toggled_provider, False),
    "account added": (added_account, False),
    # Its label is in every list that shows its models.
    "account renamed": (
        lambda rng, _: saved(any_account(rng, "anthropic"), name=f"Anthropic {uuid.uuid4()}"),
        False,
    ),
}


def lists(developers: list[User]) -> list[Any]:
    """Each developer's list, caps and which models a call of theirs is let through to, from
    the public entry points."""
    model_ids = list(LLMModel.objects.values_list("pk", flat=True))
    return [
        (
            cached_model_list(developer),
            budget_and_caps(developer)[1],
            [model_id for model_id in model_ids if offered_model(developer, model_id)[0]],
        )
        for developer in developers
    ]


def test_after_any_sequence_of_changes_each_list_is_what_a_full_rebuild_gives(setup, monkeypatch):
    rng = random.Random(26)
    developers = setup["developers"]
    real_build, builds = chat.model_list.build_configuration, []
    monkeypatch.setattr(
        chat.model_list,
        "build_configuration",
        lambda fingerprint, changes: builds.append(fingerprint) or real_build(fingerprint, changes),
    )
    lists(developers)
    names = sorted(CHANGES) * 2
    rng.shuffle(names)

    for name in names:
        change, incremental = CHANGES[name]
        with transaction.atomic():
            change(rng, setup)
        builds.clear()
        updated = lists(developers)
        assert builds == ([] if incremental else [builds[0]]), name
        kept = chat.model_list._configuration
        monkeypatch.setattr(chat.model_list, "_configuration", None)
        assert updated == lists(developers), name
        monkeypatch.setattr(chat.model_list, "_configuration", kept)


def rewritten_history() -> None:
    """A database restored to another history: the change applied last has another token."""
    ConfigurationChange.objects.filter(
        pk=ConfigurationChange.objects.order_by("-pk").values("pk")[:1]
    ).update(token=uuid.uuid4())


def unlogged_change() -> None:
    """A process of the previous release (during a rolling deploy) writes a new token and no
    row in the log."""
    ConfigurationVersion.objects.filter(pk=1).update(token=uuid.uuid4())


def pruned_past() -> None:
    for _ in range(KEPT_CHANGES + 100):
        configuration_changed(ConfigurationChange.Kind.PROVIDERS, [])


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(rewritten_history, id="history rewritten"),
        pytest.param(pruned_past, id="log pruned past the change applied"),
        pytest.param(unlogged_change, id="a change not logged, then one logged"),
        pytest.param(configuration_changed, id="a change of anything"),
    ],
)
def test_what_the_log_cannot_tell_is_read_again_in_full(setup, lost):
    developer = setup["developers"][0]
    cached_model_list(developer)
    model = LLMModel.objects.filter(restricted=False, enabled=True).first()
    # Unseen by any signal: only a full rebuild shows it.
    LLMModel.objects.filter(pk=model.pk).update(display_name="Changed unseen")

    lost()
    LLMModelFactory(provider=model.provider)  # a change the log tells

    assert b"Changed unseen" in cached_model_list(developer)[1]


def test_the_cache_holds_each_scopes_list_once_as_last_served_and_within_its_bytes(
    setup, monkeypatch
):
    red = setup["groups"][0]
    # Developer 0's scope, another budget: the two share one cached body, as last served.
    twin = User.objects.create_user("twin", password="pw")
    twin.groups.add(red)
    UserBudget.objects.create(user=twin, monthly_allowance=Decimal(9))
    people = [*setup["developers"], twin]
    served = {person: cached_model_list(person) for person in people}
    limit = 2 * max(len(body) for _, body in served.values())
    monkeypatch.setattr(chat.model_list, "MAX_CACHED_BYTES", limit)

    for person in people * 3:
        assert cached_model_list(person) == served[person]
        configuration = chat.model_list._configuration
        kept = [len(last.body) for last in configuration.lists.values()]
        assert configuration.cached_bytes == sum(kept) <= limit


def test_after_a_model_changes_each_list_joins_again_only_its_providers_group(setup, monkeypatch):
    developers = setup["developers"]
    for developer in developers:
        cached_model_list(developer)
    joined, real_group = [], chat.model_list.Configuration.group

    def recorded_group(configuration, provider, *args):
        group = real_group(configuration, provider, *args)
        if group is not None and not isinstance(group.data, memoryview):
            joined.append(provider["type"])
        return group

    monkeypatch.setattr(chat.model_list.Configuration, "group", recorded_group)
    model = LLMModel.objects.filter(provider__type="openai", is_default=False).first()
    saved(model, display_name="Renamed")

    for developer in developers:
        assert b"Renamed" in cached_model_list(developer)[1]

    # The default's account is read again with every change of models: OpenAI's too.
    assert LLMModel.objects.get(is_default=True).provider.type == "openai"
    assert set(joined) == {"openai"}


def test_lists_kept_from_before_a_change_count_within_the_cache_bytes(setup, monkeypatch):
    developers = setup["developers"]
    served = [cached_model_list(developer) for developer in developers]
    limit = 2 * max(len(body) for _, body in served)
    monkeypatch.setattr(chat.model_list, "MAX_CACHED_BYTES", limit)
    for developer in developers:
        cached_model_list(developer)
    LLMModelFactory(provider=Provider.objects.filter(type="openai").first())

    for developer in developers * 2:
        cached_model_list(developer)
        configuration = chat.model_list._configuration
        earlier = sum(len(served.body) for served in configuration.earlier.values())
        assert configuration.earlier_bytes == earlier
        assert configuration.cached_bytes + earlier <= limit


def test_a_process_keeps_one_configurations_lists_and_readings(setup):
    developers = setup["developers"]
    for developer in developers:
        cached_model_list(developer)
    replaced = chat.model_list._configuration
    LLMModelFactory(provider=Provider.objects.first())

    for developer in developers:
        cached_model_list(developer)

    # The configuration replaced still serves the requests the change overtook, from nothing kept.
    assert chat.model_list._replaced is replaced
    assert (replaced.lists, replaced.cached_bytes) == ({}, 0)
    assert (replaced.served_from, replaced.served_from_bytes) == ({}, 0)
    assert chat.model_list._configuration.lists


def test_the_log_stays_small():
    pruned_past()

    assert ConfigurationChange.objects.count() <= KEPT_CHANGES + 100
