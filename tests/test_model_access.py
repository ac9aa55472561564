"""Who may use which model: the model list, chat, the admin's access fields and 'What developers
see', configuration as code."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import factory
import pytest
import yaml
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from billing.models import UserBudget
from chat.models import Conversation
from llmadmin.models import CheckStatus, LLMModel
from tests.chat_api import send, texts
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db

MODELS = reverse("api-models")
CHAT = reverse("api-chat")
ADD = reverse("admin:llmadmin_llmmodel_add")
CHANGELIST = reverse("admin:llmadmin_llmmodel_changelist")
WHAT = reverse("admin:llmadmin_llmmodel_what_developers_see")
KEY = "sk-ACCESSSECRET-14"
NOT_FOR_CHAT = {"model_id": ["This model is not available for chat."]}
RESTRICTED_UNTICKED = (
    "Tick this to keep the model to the groups and users chosen below, or clear them to offer "
    "it to everyone."
)


class RestrictedModelFactory(LLMModelFactory):
    """A model only for the groups and users given (none given: for nobody)."""

    class Meta:
        skip_postgeneration_save = True

    restricted = True

    @factory.post_generation
    def groups(self, create: bool, extracted: list[Group] | None, **kwargs: object) -> None:
        if create and extracted:
            self.allowed_groups.set(extracted)

    @factory.post_generation
    def users(self, create: bool, extracted: list[User] | None, **kwargs: object) -> None:
        if create and extracted:
            self.allowed_users.set(extracted)


def group(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def user(username: str, groups: tuple[str, ...] = (), **flags: bool) -> User:
    """The user of this name (created if need be), in these groups."""
    found = User.objects.filter(username=username).first()
    found = found or User.objects.create_user(username, password="pw", **flags)
    found.groups.add(*(group(name) for name in groups))
    return found


def logged_in(person: User) -> Client:
    client = Client()
    client.force_login(person)
    return client


def administrator() -> Client:
    """A superuser, logged in now (after any switch of the secrets a session is signed with)."""
    return logged_in(User.objects.create_superuser("admin", password="pw"))


def offered(client: Client) -> list[str]:
    """The display names of the models this developer's list offers, in order."""
    payload = client.get(MODELS).json()
    return [model["display_name"] for entry in payload["groups"] for model in entry["models"]]


def chat(client: Client, model: LLMModel):
    return client.post(CHAT, {"model_id": model.pk, "message": "Hi"}, "application/json")


def change_url(model: LLMModel) -> str:
    return reverse("admin:llmadmin_llmmodel_change", args=[model.pk])


def model_form(model: LLMModel | None = None, **overrides: object) -> dict[str, object]:
    """The model change form as stored (or a new model's), then the overrides; None leaves a
    field out."""
    data: dict[str, object] = {
        "provider": model.provider_id if model else ProviderFactory(anthropic=True).pk,
        "identifier": model.identifier if model else "claude-sonnet-4-6",
        "display_name": model.display_name if model else "Claude Sonnet 4.6",
        "enabled": "on",
        "context_limit": str(model.context_limit if model else 1_000_000),
        "compression_threshold": "70",
    }
    if model is not None:
        data["restricted"] = "on" if model.restricted else None
        data["allowed_groups"] = [g.pk for g in model.allowed_groups.all()]
        data["allowed_users"] = [u.pk for u in model.allowed_users.all()]
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def access_of(model: LLMModel) -> tuple[bool, set[str], set[str]]:
    model = LLMModel.objects.get(pk=model.pk)
    return (
        model.restricted,
        {g.name for g in model.allowed_groups.all()},
        {u.username for u in model.allowed_users.all()},
    )


# --- the model list: access by group, by user, both and neither ------------------------------


@pytest.fixture
def access_catalog() -> None:
    """One model of each kind of access, of one available provider."""
    provider = ProviderFactory(anthropic=True)
    team = group("Team")
    group("Unlisted")  # a group no model names
    named = user("named")
    LLMModelFactory(provider=provider, display_name="Open")
    RestrictedModelFactory(provider=provider, display_name="By group", groups=[team])
    RestrictedModelFactory(provider=provider, display_name="By user", users=[named])
    RestrictedModelFactory(provider=provider, display_name="Both", groups=[team], users=[named])
    RestrictedModelFactory(provider=provider, display_name="For nobody")


@pytest.mark.parametrize(
    ("username", "groups", "flags", "expected"),
    [
        pytest.param("member", ("Team",), {}, ["Both", "By group", "Open"], id="in the group"),
        pytest.param("named", (), {}, ["Both", "By user", "Open"], id="listed by name"),
        pytest.param(
            "named", ("Team",), {}, ["Both", "By group", "By user", "Open"], id="group and name"
        ),
        pytest.param("outsider", ("Unlisted",), {}, ["Open"], id="in an unlisted group"),
        pytest.param("loner", (), {}, ["Open"], id="in no group and not listed"),
        pytest.param(
            "root", (), {"is_superuser": True, "is_staff": True}, ["Open"], id="superuser"
        ),
        pytest.param("staffer", (), {"is_staff": True}, ["Open"], id="staff"),
    ],
)
def test_each_developer_is_offered_the_open_models_and_those_that_list_them(
    access_catalog, username, groups, flags, expected
):
    developer = user(username, groups, **flags)

    assert offered(logged_in(developer)) == expected


def test_a_model_restricted_to_nobody_is_offered_to_no_one(access_catalog):
    everyone = [
        user("member", ("Team",)),
        user("named", ("Team", "Unlisted")),
        user("root", is_superuser=True, is_staff=True),
    ]

    for developer in everyone:
        names = offered(logged_in(developer))
        assert "Open" in names, developer
        assert "For nobody" not in names, developer


def test_a_restricted_model_of_an_unavailable_provider_counts_only_for_who_may_use_it():
    team = group("Team")
    RestrictedModelFactory(provider=ProviderFactory(openai=True, no_key=True), groups=[team])
    member, outsider = user("member", ("Team",)), user("outsider")

    member_list = logged_in(member).get(MODELS).json()
    outsider_list = logged_in(outsider).get(MODELS).json()

    assert [
        (e["provider_type"], e["model_count"]) for e in member_list["unavailable_providers"]
    ] == [("openai", 1)]
    assert outsider_list["unavailable_providers"] == []


def test_the_list_counts_the_models_kept_from_a_developer():
    provider = ProviderFactory(openai=True)
    RestrictedModelFactory(provider=provider, groups=[group("Team")])
    RestrictedModelFactory(provider=provider, users=[user("named")])
    # A kept model of a provider without a key: access would not make it usable.
    RestrictedModelFactory(provider=ProviderFactory(anthropic=True, no_key=True))
    LLMModelFactory(provider=provider)

    counts = {
        username: logged_in(user(username, groups)).get(MODELS).json()["restricted_model_count"]
        for username, groups in (("member", ("Team",)), ("named", ()), ("outsider", ()))
    }

    assert counts == {"member": 1, "named": 1, "outsider": 2}


# --- chat ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "flags"),
    [
        pytest.param({"groups": ["Team"]}, {}, id="restricted to a group they are not in"),
        pytest.param({"users": ["someone"]}, {}, id="restricted to another user"),
        pytest.param({}, {}, id="restricted to nobody"),
        pytest.param({}, {"is_superuser": True, "is_staff": True}, id="superuser, for nobody"),
    ],
)
def test_the_chat_refuses_a_model_the_developer_may_not_use_as_it_does_a_disabled_one(
    access, flags
):
    restricted = RestrictedModelFactory(
        groups=[group(name) for name in access.get("groups", [])],
        users=[user(name) for name in access.get("users", [])],
    )
    disabled = LLMModelFactory(provider=restricted.provider, enabled=False)
    client = logged_in(user("dev", ("Unlisted",), **flags))

    for model in (restricted, disabled):
        response = chat(client, model)

        assert response.status_code == 400
        assert response.json() == NOT_FOR_CHAT
    assert not Conversation.objects.exists()


def grant_in_admin(model: LLMModel, team: Group) -> None:
    response = administrator().post(
        change_url(model), model_form(model, restricted="on", allowed_groups=[team.pk])
    )
    assert response.status_code == 302, response.context["adminform"].form.errors


def grant_in_access_list(model: LLMModel, team: Group) -> None:
    model.allowed_groups.add(team)


@pytest.mark.parametrize(
    "grant",
    [
        pytest.param(grant_in_admin, id="through the admin form"),
        pytest.param(grant_in_access_list, id="through the access list"),
    ],
)
def test_the_chat_takes_the_model_once_the_developers_group_is_added(grant):
    team = group("Team")
    developer = user("dev", ("Team",))
    client = logged_in(developer)
    with serve(FakeProvider("anthropic", KEY)) as server:
        model = RestrictedModelFactory(
            provider=provider_at("anthropic", server.url, api_key=KEY),
            identifier="claude-haiku-4-5",
            display_name="Haiku",
            groups=[group("Others")],
        )
        assert chat(client, model).json() == NOT_FOR_CHAT
        assert offered(client) == []

        grant(model, team)
        events = send(client, model)

    assert "".join(texts(events)) == "Hello world"
    assert offered(client) == ["Haiku"]


# --- the model list changes at once ---------------------------------------------------------


def tick_restricted(model: LLMModel, developer: User) -> None:
    model.restricted = True
    model.save()


def untick_restricted(model: LLMModel, developer: User) -> None:
    model.allowed_groups.clear()
    model.restricted = False
    model.save()


@pytest.mark.parametrize(
    ("start", "change", "before", "after"),
    [
        pytest.param(
            {"restricted": True},
            lambda model, dev: model.allowed_groups.add(group("Team")),
            False,
            True,
            id="their group added",
        ),
        pytest.param(
            {"groups": ["Team"]},
            lambda model, dev: model.allowed_groups.remove(group("Team")),
            True,
            False,
            id="their group removed",
        ),
        pytest.param(
            {"restricted": True},
            lambda model, dev: model.allowed_users.add(dev),
            False,
            True,
            id="they are added by name",
        ),
        pytest.param(
            {"users": ["dev"]},
            lambda model, dev: model.allowed_users.remove(dev),
            True,
            False,
            id="they are removed by name",
        ),
        pytest.param(
            {"groups": ["Team"]},
            lambda model, dev: model.allowed_groups.clear(),
            True,
            False,
            id="the groups cleared",
        ),
        pytest.param({}, tick_restricted, True, False, id="restricted ticked"),
        pytest.param({"groups": ["Others"]}, untick_restricted, False, True, id="opened"),
    ],
)
def test_an_access_change_shows_in_the_model_list_at_once(start, change, before, after):
    developer = user("dev", ("Team",))
    group("Others")
    model = LLMModelFactory(display_name="Gated", restricted=bool(start))
    model.allowed_groups.set([group(name) for name in start.get("groups", [])])
    model.allowed_users.set([user(name) for name in start.get("users", [])])
    LLMModelFactory(provider=model.provider, display_name="Open")
    client = logged_in(developer)
    first = client.get(MODELS)
    assert ("Gated" in offered(client)) is before

    change(model, developer)
    again = client.get(MODELS, HTTP_IF_NONE_MATCH=first["ETag"])

    assert again.status_code == 200
    assert again["ETag"] != first["ETag"]
    assert again.json() != first.json()
    assert ("Gated" in offered(client)) is after


def test_joining_a_group_changes_that_developers_list_and_no_other_scopes():
    model = RestrictedModelFactory(display_name="Gated", groups=[group("Team")])
    LLMModelFactory(provider=model.provider, display_name="Open")
    joiner, member, outsider = user("joiner"), user("member", ("Team",)), user("outsider")
    clients = {person: logged_in(person) for person in (joiner, member, outsider)}
    etags = {person: client.get(MODELS)["ETag"] for person, client in clients.items()}
    assert etags[joiner] == etags[outsider] != etags[member]

    joiner.groups.add(group("Team"))

    joined = clients[joiner].get(MODELS, HTTP_IF_NONE_MATCH=etags[joiner])
    assert joined.status_code == 200
    assert joined["ETag"] == etags[member]
    assert offered(clients[joiner]) == ["Gated", "Open"]
    for other in (member, outsider):
        response = clients[other].get(MODELS, HTTP_IF_NONE_MATCH=etags[other])
        assert response.status_code == 304, other
        assert response["ETag"] == etags[other]


def test_deleting_the_only_listed_group_leaves_the_model_to_nobody_not_everyone():
    model = RestrictedModelFactory(display_name="Gated", groups=[group("Team")])
    LLMModelFactory(provider=model.provider, display_name="Open")
    member = logged_in(user("member", ("Team",)))
    outsider = logged_in(user("outsider"))
    root = logged_in(user("root", is_superuser=True, is_staff=True))
    first = member.get(MODELS)
    assert offered(member) == ["Gated", "Open"]

    group("Team").delete()

    again = member.get(MODELS, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert offered(member) == ["Open"]
    assert offered(outsider) == ["Open"]
    assert offered(root) == ["Open"]
    assert access_of(model) == (True, set(), set())


def test_deleting_the_only_listed_user_leaves_the_model_to_nobody():
    named = user("named")
    model = RestrictedModelFactory(display_name="Gated", users=[named])
    LLMModelFactory(provider=model.provider, display_name="Open")
    other = logged_in(user("other"))
    assert offered(logged_in(named)) == ["Gated", "Open"]
    first = other.get(MODELS)

    named.delete()

    assert other.get(MODELS, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert offered(other) == ["Open"]
    assert access_of(model) == (True, set(), set())


# --- default_model_id -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        pytest.param(("Team",), "Zeta", id="may use the default: the default"),
        pytest.param((), "Beta", id="may not use the default: their first model"),
        pytest.param(("Others",), "Alpha", id="another group: their first model"),
    ],
)
def test_the_default_is_the_admins_when_the_developer_may_use_it_else_their_first(groups, expected):
    provider = ProviderFactory(anthropic=True)
    RestrictedModelFactory(provider=provider, display_name="Zeta", groups=[group("Team")])
    LLMModelFactory(provider=provider, display_name="Beta")
    RestrictedModelFactory(provider=provider, display_name="Alpha", groups=[group("Others")])
    LLMModel.objects.filter(display_name="Zeta").update(is_default=True)
    ids = dict(LLMModel.objects.values_list("display_name", "pk"))

    payload = logged_in(user("dev", groups)).get(MODELS).json()

    assert payload["default_model_id"] == ids[expected]


def test_the_default_is_null_for_a_developer_who_may_use_no_model():
    RestrictedModelFactory(is_default=True, groups=[group("Team")])
    RestrictedModelFactory(display_name="Other", groups=[group("Others")])

    payload = logged_in(user("dev")).get(MODELS).json()

    assert (payload["default_model_id"], payload["groups"], payload["unavailable_providers"]) == (
        None,
        [],
        [],
    )


# --- per-scope ETags ------------------------------------------------------------------------


@pytest.fixture
def scoped_catalog() -> None:
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="Open")
    RestrictedModelFactory(provider=provider, display_name="Team A's", groups=[group("A")])
    RestrictedModelFactory(provider=provider, display_name="Team B's", groups=[group("B")])
    RestrictedModelFactory(provider=provider, display_name="Named", users=[user("named")])
    group("Unlisted one")
    group("Unlisted two")


def test_developers_with_the_same_listed_groups_share_an_etag(scoped_catalog):
    first = logged_in(user("first", ("A", "Unlisted one"))).get(MODELS)
    second = logged_in(user("second", ("A", "Unlisted two"))).get(MODELS)

    assert first["ETag"] == second["ETag"]
    assert first.content == second.content


def test_developers_sharing_a_list_each_get_it_with_their_own_budget(scoped_catalog):
    budgeted, unbudgeted = user("budgeted", ("A",)), user("unbudgeted", ("A",))
    UserBudget.objects.create(user=budgeted, monthly_allowance=Decimal(25))
    clients = {budgeted: logged_in(budgeted), unbudgeted: logged_in(unbudgeted)}

    # In turn, as the process's copy of the scope's list moves from one budget to the other.
    served = [(person, clients[person].get(MODELS)) for person in [budgeted, unbudgeted] * 2]

    allowances = [response.json()["budget"]["monthly_allowance"] for _, response in served]
    assert allowances == ["25.0000", None, "25.0000", None]
    assert [response.json()["groups"] for _, response in served[1:]] == [
        served[0][1].json()["groups"]
    ] * 3
    etags = {
        person: {response["ETag"] for who, response in served if who == person}
        for person in clients
    }
    assert [len(etags[budgeted]), len(etags[unbudgeted])] == [1, 1]
    assert etags[budgeted] != etags[unbudgeted]
    for person, client in clients.items():
        (etag,) = etags[person]
        assert client.get(MODELS, HTTP_IF_NONE_MATCH=etag).status_code == 304


@pytest.mark.parametrize(
    ("one", "other"),
    [
        pytest.param(("a", ("A",)), ("b", ("B",)), id="different listed groups"),
        pytest.param(("a", ("A",)), ("ab", ("A", "B")), id="one listed group more"),
        pytest.param(("a", ("A",)), ("named", ("A",)), id="listed by name"),
        pytest.param(("none", ()), ("a", ("A",)), id="no group and a listed group"),
    ],
)
def test_different_scopes_get_different_etags_and_each_answers_304_to_its_own(
    scoped_catalog, one, other
):
    one_client, other_client = logged_in(user(*one)), logged_in(user(*other))
    one_etag, other_etag = one_client.get(MODELS)["ETag"], other_client.get(MODELS)["ETag"]

    assert one_etag != other_etag
    assert one_client.get(MODELS, HTTP_IF_NONE_MATCH=one_etag).status_code == 304
    assert other_client.get(MODELS, HTTP_IF_NONE_MATCH=other_etag).status_code == 304
    crossed = one_client.get(MODELS, HTTP_IF_NONE_MATCH=other_etag)
    assert crossed.status_code == 200
    assert crossed["ETag"] == one_etag


# --- query counts ---------------------------------------------------------------------------


def catalog_of(model_count: int, group_count: int, restrict_to: str) -> list[Group]:
    """model_count models over two providers; every third (not the first) restricted to two
    of group_count groups (restrict_to "groups") or to two users ("users")."""
    groups = Group.objects.bulk_create([Group(name=f"group-{n}") for n in range(group_count)])
    listed_users = [user(f"listed-{n}") for n in range(4)] if restrict_to == "users" else []
    providers = [ProviderFactory(anthropic=True), ProviderFactory(openai=True)]
    models = LLMModel.objects.bulk_create(
        LLMModelFactory.build(provider=providers[n % 2], restricted=n % 3 == 1)
        for n in range(model_count)
    )
    restricted = [(n, model) for n, model in enumerate(models) if model.restricted]
    through_groups = LLMModel.allowed_groups.through
    through_users = LLMModel.allowed_users.through
    if restrict_to == "groups":
        through_groups.objects.bulk_create(
            through_groups(llmmodel=model, group=groups[(n + step) % group_count])
            for n, model in restricted
            for step in (0, 1)
        )
    elif restrict_to == "users":
        through_users.objects.bulk_create(
            through_users(llmmodel=model, user=listed_users[(n + step) % 4])
            for n, model in restricted
            for step in (0, 1)
        )
    return groups


@pytest.mark.parametrize(
    ("model_count", "group_count", "restrict_to"),
    [
        pytest.param(1, 0, "nothing", id="1 model, 0 groups"),
        pytest.param(200, 50, "groups", id="200 models, 50 groups listed"),
        pytest.param(200, 50, "users", id="200 models listing users, 50 groups"),
    ],
)
def test_the_list_runs_the_same_queries_whatever_the_catalog_and_group_count(
    django_assert_num_queries, model_count, group_count, restrict_to
):
    groups = catalog_of(model_count, group_count, restrict_to)
    developer = user("dev")
    developer.groups.add(*groups[::2])
    client = logged_in(developer)

    # the session with its user, their groups and budget and the fingerprint, the changes
    # logged, providers, models, two access lists, the token again
    with django_assert_num_queries(7):
        cold = client.get(MODELS)
    # the session with its user, their groups and budget and the fingerprint
    with django_assert_num_queries(1):
        cached = client.get(MODELS)

    assert cold.status_code == cached.status_code == 200
    assert cold["ETag"] == cached["ETag"]
    assert cold.json()["groups"]


# --- the admin's form, list and filter ------------------------------------------------------


def select_tag(html: str, name: str) -> str:
    return re.search(rf'<select[^>]*name="{name}"[^>]*>', html).group(0)


def who_may_use_it(html: str) -> str:
    """The 'Who may use it' fieldset of a model form."""
    return html.split(">Who may use it</h2>", 1)[1].split("</fieldset>", 1)[0]


@pytest.mark.parametrize("page", ["add", "change"])
def test_the_model_form_has_the_access_fieldset_with_two_filter_widgets(admin_client, page):
    url = ADD if page == "add" else change_url(LLMModelFactory())

    fieldset = who_may_use_it(admin_client.get(url).text)

    assert 'name="restricted"' in fieldset
    for name, label in (("allowed_groups", "groups"), ("allowed_users", "users")):
        tag = select_tag(fieldset, name)
        assert "multiple" in tag
        assert 'class="selectfilter"' in tag
        assert f'data-field-name="{label}"' in tag


def test_ticking_restricted_with_groups_and_users_saves_them(admin_client):
    alice = user("alice")
    team, others = group("Team"), group("Others")

    response = admin_client.post(
        ADD,
        model_form(restricted="on", allowed_groups=[team.pk, others.pk], allowed_users=[alice.pk]),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert access_of(LLMModel.objects.get()) == (True, {"Team", "Others"}, {"alice"})


def test_ticking_restricted_without_lists_saves_a_model_for_nobody(admin_client):
    response = admin_client.post(ADD, model_form(restricted="on"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert access_of(LLMModel.objects.get()) == (True, set(), set())


@pytest.mark.parametrize("page", ["add", "change"])
def test_lists_with_restricted_unticked_are_refused_and_nothing_is_saved(admin_client, page):
    alice, team = user("alice"), group("Team")
    model = LLMModelFactory(display_name="Original") if page == "change" else None
    url = change_url(model) if model else ADD
    stored = list(LLMModel.objects.values())

    response = admin_client.post(
        url,
        model_form(
            model,
            display_name="Typed name",
            restricted=None,
            allowed_groups=[team.pk],
            allowed_users=[alice.pk],
        ),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"restricted": [RESTRICTED_UNTICKED]}
    assert list(LLMModel.objects.values()) == stored
    assert not LLMModel.allowed_groups.through.objects.exists()
    assert not LLMModel.allowed_users.through.objects.exists()
    html = response.text
    assert 'value="Typed name"' in html
    fieldset = who_may_use_it(html)
    assert f'<option value="{team.pk}" selected>Team</option>' in fieldset
    assert f'<option value="{alice.pk}" selected>alice</option>' in fieldset
    assert "checked" not in re.search(r'<input[^>]*name="restricted"[^>]*>', fieldset).group(0)


def changelist_rows(html: str) -> dict[str, str]:
    """Display name: 'Available to', for each row of the model list."""
    rows = re.findall(
        r'class="field-display_name"><a [^>]*>([^<]*)</a>.*?'
        r'<td class="field-available_to">([^<]*)</td>',
        html,
        re.S,
    )
    return dict(rows)


def test_the_model_list_says_who_each_model_is_available_to(admin_client):
    provider = ProviderFactory(anthropic=True)
    teams = [group("Team"), group("Others")]
    LLMModelFactory(provider=provider, display_name="Open")
    RestrictedModelFactory(provider=provider, display_name="Closed")
    RestrictedModelFactory(
        provider=provider, display_name="Three", groups=teams, users=[user("alice")]
    )
    RestrictedModelFactory(provider=provider, display_name="One group", groups=teams[:1])
    RestrictedModelFactory(
        provider=provider, display_name="Two users", users=[user("alice"), user("bob")]
    )

    rows = changelist_rows(admin_client.get(CHANGELIST).text)

    assert rows == {
        "Open": "Everyone",
        "Closed": "Nobody",
        "Three": "2 groups and 1 user",
        "One group": "1 group",
        "Two users": "2 users",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("restricted", {"Closed", "Team only"}, id="restricted"),
        pytest.param("everyone", {"Open"}, id="open"),
    ],
)
def test_the_model_list_filters_on_access(admin_client, value, expected):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, display_name="Open")
    RestrictedModelFactory(provider=provider, display_name="Closed")
    RestrictedModelFactory(provider=provider, display_name="Team only", groups=[group("Team")])

    html = admin_client.get(CHANGELIST, {"access": value}).text

    assert "By access" in html
    assert set(changelist_rows(html)) == expected


# --- What developers see --------------------------------------------------------------------


@pytest.fixture
def every_reason(encryption_secrets) -> None:
    """A model for each reason a developer doesn't get it, and some that they may."""
    encryption_secrets("the-secret-before")
    LLMModelFactory(provider=ProviderFactory(openrouter=True), display_name="Router")
    encryption_secrets("the-secret-now")  # the OpenRouter key is unreadable from here on
    anthropic = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=anthropic, display_name="Open")
    LLMModelFactory(provider=anthropic, display_name="Off", enabled=False)
    RestrictedModelFactory(provider=anthropic, display_name="Team model", groups=[group("Team")])
    RestrictedModelFactory(
        provider=anthropic, display_name="Alice model", users=[user("alice", ("Team",))]
    )
    RestrictedModelFactory(
        provider=anthropic, display_name="Others model", groups=[group("Others")]
    )
    RestrictedModelFactory(provider=anthropic, display_name="For nobody")
    LLMModelFactory(provider=ProviderFactory(openai=True, enabled=False), display_name="GPT")
    LLMModelFactory(provider=ProviderFactory(google=True, no_key=True), display_name="Gemini")
    LLMModelFactory(
        provider=ProviderFactory(vercel=True, check_status=CheckStatus.REJECTED),
        display_name="Vercel",
    )
    user("bob")


# What everyone sees the same way: the reasons that aren't about access.
NOT_ABOUT_ACCESS = {
    "Open": "Yes",
    "Off": "Disabled",
    "GPT": "Provider disabled",
    "Gemini": "No key",
    "Vercel": "Key rejected",
    "Router": "Key unreadable",
    "For nobody": "Restricted to nobody",
}
OTHERS = "Restricted to other groups or users"


def seen(html: str) -> dict[str, str]:
    """Model: 'Yes', or why not, for each row of the What developers see table."""
    table = html.split('<table id="what-developers-see">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for css, row in re.findall(r'<tr class="(offered|not-offered)">(.*?)</tr>', table, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td>(.*?)</td>", row, re.S)
        ]
        _, name, _, gets, reason = cells
        assert (css == "offered") == (gets == "Yes") == (reason == ""), cells
        rows[name] = reason or "Yes"
    return rows


@pytest.mark.parametrize(
    ("kind", "name", "access"),
    [
        pytest.param(
            "user",
            "alice",
            {"Team model": "Yes", "Alice model": "Yes", "Others model": OTHERS},
            id="a user: through their group and by name",
        ),
        pytest.param(
            "user",
            "bob",
            {"Team model": OTHERS, "Alice model": OTHERS, "Others model": OTHERS},
            id="a user in no group",
        ),
        pytest.param(
            "group",
            "Team",
            {"Team model": "Yes", "Alice model": OTHERS, "Others model": OTHERS},
            id="a group: not what its members get by name",
        ),
        pytest.param(
            "group",
            "Others",
            {"Team model": OTHERS, "Alice model": OTHERS, "Others model": "Yes"},
            id="another group",
        ),
    ],
)
def test_what_developers_see_gives_each_model_and_why_not(every_reason, kind, name, access):
    who = User.objects.get(username=name) if kind == "user" else Group.objects.get(name=name)

    response = administrator().get(WHAT, {kind: who.pk})

    assert response.status_code == 200
    assert f"What {name} gets" in response.text
    assert seen(response.text) == NOT_ABOUT_ACCESS | access


def test_what_developers_see_agrees_with_the_model_list(every_reason):
    alice = User.objects.get(username="alice")

    rows = seen(administrator().get(WHAT, {"user": alice.pk}).text)

    assert sorted(name for name, reason in rows.items() if reason == "Yes") == sorted(
        offered(logged_in(alice))
    )


def test_picking_both_a_user_and_a_group_is_a_form_error(admin_client):
    LLMModelFactory()

    response = admin_client.get(WHAT, {"user": user("alice").pk, "group": group("Team").pk})

    assert response.status_code == 200
    assert "Pick a user or a group, not both." in response.text
    assert 'id="what-developers-see"' not in response.text


@pytest.mark.parametrize(
    ("permissions", "status"),
    [
        pytest.param(("view_user",), 403, id="staff without model permissions"),
        pytest.param(("view_llmmodel",), 403, id="may view models but not users or groups"),
        pytest.param(("view_llmmodel", "view_user"), 200, id="may only view models and users"),
        pytest.param(("change_llmmodel", "view_user"), 200, id="may change models, view users"),
    ],
)
def test_what_developers_see_needs_permission_to_view_models_and_users(permissions, status):
    LLMModelFactory(display_name="Open")
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=permissions))

    response = logged_in(staff).get(WHAT, {"user": staff.pk})

    assert response.status_code == status
    if status == 200:
        assert seen(response.text) == {"Open": "Yes"}


def test_a_developer_is_sent_to_the_admin_login():
    response = logged_in(user("dev")).get(WHAT)

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("permissions", [("view_llmmodel",), ("change_llmmodel",)])
def test_the_model_list_links_to_what_developers_see(permissions):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=permissions))

    html = logged_in(staff).get(CHANGELIST).text

    assert f'<a href="{WHAT}">What developers see</a>' in html


# --- configuration as code ------------------------------------------------------------------


def export() -> dict:
    out = io.StringIO()
    call_command("export_config", stdout=out, stderr=io.StringIO())
    return yaml.safe_load(out.getvalue())


def exported_models(data: dict) -> dict[str, dict]:
    return {
        model["identifier"]: model for provider in data["providers"] for model in provider["models"]
    }


def run_import(tmp_path, data: dict) -> tuple[list[str], list[str], CommandError | None]:
    """import_config of this data: its output lines, its error lines, and its failure."""
    path = tmp_path / "llm.yaml"
    path.write_text(yaml.safe_dump(data))
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_config", str(path), stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue().splitlines(), err.getvalue().splitlines(), error
    return out.getvalue().splitlines(), err.getvalue().splitlines(), None


def import_data(tmp_path, data: dict) -> list[str]:
    """import_config of this data, which must succeed: its output lines."""
    out, err, failure = run_import(tmp_path, data)
    assert failure is None, err
    return out


def anthropic_file(*models: dict) -> dict:
    return {"version": 1, "providers": [{"type": "anthropic", "models": list(models)}]}


def model_entry(identifier: str, **fields: object) -> dict:
    return {
        "identifier": identifier,
        "display_name": identifier,
        "context_limit": 200_000,
        **fields,
    }


def access_snapshot() -> dict[str, tuple[bool, set[str], set[str]]]:
    return {model.identifier: access_of(model) for model in LLMModel.objects.all()}


def test_the_export_names_who_may_use_each_restricted_model_and_nothing_for_open_ones():
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, identifier="open")
    RestrictedModelFactory(provider=provider, identifier="nobody")
    RestrictedModelFactory(
        provider=provider,
        identifier="teams",
        groups=[group("Research"), group("Platform")],
        users=[user("zoe"), user("alice")],
    )

    models = exported_models(export())

    assert "access" not in models["open"]
    assert models["nobody"]["access"] == {"groups": [], "users": []}
    assert models["teams"]["access"] == {
        "groups": ["Platform", "Research"],
        "users": ["alice", "zoe"],
    }


def test_an_import_applies_access_by_name_and_says_so(tmp_path):
    group("Research")
    user("alice")
    LLMModelFactory(
        provider=ProviderFactory(anthropic=True),
        identifier="claude-haiku-4-5",
        display_name="claude-haiku-4-5",
        context_limit=200_000,
    )

    out = import_data(
        tmp_path,
        anthropic_file(
            model_entry("claude-haiku-4-5", access={"groups": ["Research"], "users": ["alice"]})
        ),
    )

    assert out == [
        "update model anthropic/claude-haiku-4-5: restricted False -> True",
        "update model anthropic/claude-haiku-4-5: access [] -> [Research, alice]",
        "Applied 2 changes.",
    ]
    assert access_snapshot() == {"claude-haiku-4-5": (True, {"Research"}, {"alice"})}
    assert offered(logged_in(user("alice"))) == ["claude-haiku-4-5"]
    assert offered(logged_in(user("bob"))) == []


def test_an_import_without_access_opens_the_model(tmp_path):
    model = RestrictedModelFactory(
        provider=ProviderFactory(anthropic=True),
        identifier="claude-haiku-4-5",
        display_name="claude-haiku-4-5",
        context_limit=200_000,
        groups=[group("Research")],
    )

    out = import_data(tmp_path, anthropic_file(model_entry("claude-haiku-4-5")))

    assert out == [
        "update model anthropic/claude-haiku-4-5: restricted True -> False",
        "update model anthropic/claude-haiku-4-5: access [Research] -> []",
        "Applied 2 changes.",
    ]
    assert access_of(model) == (False, set(), set())


def test_a_second_import_of_the_same_access_changes_nothing(tmp_path):
    ProviderFactory(anthropic=True)
    group("Research")
    user("alice")
    data = anthropic_file(
        model_entry("claude-haiku-4-5", access={"groups": ["Research"], "users": ["alice"]}),
        model_entry("claude-sonnet-4-6", access={"groups": ["Research"]}),
        model_entry("claude-opus-4-6"),
    )
    first = import_data(tmp_path, data)
    applied = access_snapshot()

    second = import_data(tmp_path, data)

    assert first[-1] != "Applied 0 changes."
    assert second == ["Applied 0 changes."]
    assert access_snapshot() == applied


@pytest.mark.parametrize(
    ("access", "error"),
    [
        pytest.param(
            {"groups": ["Research", "Ghosts"], "users": ["alice"]},
            "providers[0] (anthropic).models[1].access.groups: no such group: Ghosts.",
            id="an unknown group",
        ),
        pytest.param(
            {"groups": ["Research"], "users": ["mallory", "alice"]},
            "providers[0] (anthropic).models[1].access.users: no such user: mallory.",
            id="an unknown user",
        ),
        pytest.param(
            None,
            "providers[0] (anthropic).models[1].access: must be a mapping with groups and "
            "users; leave it out to open the model to everyone.",
            id="an empty access: (YAML's null) never means everyone",
        ),
    ],
)
def test_an_unknown_name_is_refused_where_it_is_and_nothing_is_applied(tmp_path, access, error):
    provider = ProviderFactory(anthropic=True)
    group("Research")
    user("alice")
    LLMModelFactory(provider=provider, identifier="claude-haiku-4-5", display_name="Haiku")
    before = (list(LLMModel.objects.values()), access_snapshot())
    data = anthropic_file(
        # Valid on its own: a rename and an access list, neither applied.
        model_entry("claude-haiku-4-5", display_name="Renamed", access={"groups": ["Research"]}),
        model_entry("claude-sonnet-4-6", access=access),
    )

    out, err, failure = run_import(tmp_path, data)

    assert str(failure) == "1 errors: nothing was applied."
    assert err == [f"{tmp_path / 'llm.yaml'}: {error}"]
    assert out == []
    assert (list(LLMModel.objects.values()), access_snapshot()) == before


@pytest.mark.parametrize("onto", ["a fresh deployment", "the same deployment"])
def test_an_export_and_import_keeps_nobody_distinct_from_everyone(tmp_path, onto):
    provider = ProviderFactory(anthropic=True)
    LLMModelFactory(provider=provider, identifier="claude-opus-4-6", display_name="Opus")
    RestrictedModelFactory(provider=provider, identifier="claude-sonnet-4-6", display_name="Sonnet")
    RestrictedModelFactory(
        provider=provider,
        identifier="claude-haiku-4-5",
        display_name="Haiku",
        groups=[group("Research")],
        users=[user("alice")],
    )
    expected = {
        "claude-opus-4-6": (False, set(), set()),
        "claude-sonnet-4-6": (True, set(), set()),
        "claude-haiku-4-5": (True, {"Research"}, {"alice"}),
    }
    assert access_snapshot() == expected
    data = export()
    if onto == "a fresh deployment":
        LLMModel.objects.all().delete()

    out = import_data(tmp_path, data)

    # Restricted to nobody must not come back open to every developer.
    assert access_snapshot() == expected
    assert offered(logged_in(user("bob"))) == ["Opus"]
    if onto == "the same deployment":
        assert out == ["Applied 0 changes."]


def test_what_developers_see_offers_only_the_choices_the_admin_may_see():
    user("alice")
    group("Team")
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(codename__in=("view_llmmodel", "view_group"))
    )

    page = logged_in(staff).get(WHAT).text

    assert 'name="group"' in page and "Team" in page
    assert 'name="user"' not in page and "alice" not in page


def test_what_developers_see_comes_a_page_at_a_time(admin_client):
    from llmadmin.admin.llm_models import MODELS_PER_EXPLAINED_PAGE

    provider = ProviderFactory(anthropic=True)
    LLMModel.objects.bulk_create(
        LLMModel(provider=provider, identifier=f"m-{n:04d}", display_name=f"M {n:04d}",
                 context_limit=1000)
        for n in range(MODELS_PER_EXPLAINED_PAGE + 5)
    )  # fmt: skip
    alice = user("alice")

    first = admin_client.get(WHAT, {"user": alice.pk})
    second = admin_client.get(WHAT, {"user": alice.pk, "page": 2})

    assert len(seen(first.text)) == MODELS_PER_EXPLAINED_PAGE
    assert f"user={alice.pk}&amp;page=2" in first.text
    rest = range(MODELS_PER_EXPLAINED_PAGE, MODELS_PER_EXPLAINED_PAGE + 5)
    assert seen(second.text) == {f"M {n:04d}": "Yes" for n in rest}
