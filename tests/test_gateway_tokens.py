"""Personal access tokens: the developers' page, how caller_of reads a request's token and the
gateway's policy, the admin, create_token, the audit. (The APIs' own refusals are tested with
each API.)"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from auditlog.models import LogEntry as AuditEntry
from django.contrib.auth.models import Group, Permission, User
from django.core.management import CommandError, call_command
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from billing.budgets import Allowance
from billing.models import UserBudget
from chat.model_list import usable_models
from gateway.calls import CLIENT_NAME_LENGTH, GatewayClosed, caller_of
from gateway.models import GatewayPolicy, PersonalAccessToken
from gateway.tokens import token_used
from tests.factories import AccessTokenFactory, LLMModelFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("tokens")
TOKEN_LIST = reverse("admin:gateway_personalaccesstoken_changelist")
NOW = datetime(2026, 12, 5, 9, tzinfo=UTC)


def sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def revoke_url(token: PersonalAccessToken) -> str:
    return reverse("token-revoke", args=[token.pk])


def created_secret(response) -> str:
    """The secret the create answer shows (in its OPENAI_API_KEY line)."""
    line = next(
        line
        for line in response.content.decode().splitlines()
        if line.startswith("OPENAI_API_KEY=")
    )
    return line.removeprefix("OPENAI_API_KEY=")


# The developers' page


def test_the_agents_page_links_to_the_tokens_page(client, developer):
    assert f'href="{PAGE}"' in client.get(reverse("agents")).content.decode()


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_tokens_page_needs_a_login(client, method):
    response = getattr(client, method)(PAGE, {"name": "laptop", "expires_in": "30"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not PersonalAccessToken.objects.exists()


def test_a_new_token_is_shown_once_with_the_lines_for_both_apis_and_only_its_hash_is_kept(
    client, developer
):
    response = client.post(PAGE, {"name": "laptop", "expires_in": "30"})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = created_secret(response)
    assert secret.startswith("llma_")
    page = response.content.decode()
    for line in (
        "OPENAI_BASE_URL=http://testserver/gateway/openai/v1",
        f"OPENAI_API_KEY={secret}",
        "ANTHROPIC_BASE_URL=http://testserver/gateway/anthropic",
        f"ANTHROPIC_AUTH_TOKEN={secret}",
    ):
        assert line in page
    token = PersonalAccessToken.objects.get()
    assert (token.user, token.name, token.digest) == (developer, "laptop", sha256(secret))
    stored = PersonalAccessToken.objects.values().get()
    assert not [value for value in stored.values() if secret in str(value)]
    assert secret not in str(dict(client.session))

    reloaded = client.get(PAGE).content.decode()
    assert secret not in reloaded
    assert f"llma_{token.prefix}_…" in reloaded
    assert "laptop" in reloaded


@pytest.mark.parametrize(
    ("posted", "expires_in"),
    [("30", timedelta(days=30)), ("90", timedelta(days=90)), ("never", None)],
    ids=["30-days", "90-days", "never"],
)
def test_a_token_expires_as_chosen(client, developer, posted, expires_in):
    with time_machine.travel(NOW, tick=False):
        client.post(PAGE, {"name": "ci", "expires_in": posted})

    expected = NOW + expires_in if expires_in else None
    assert PersonalAccessToken.objects.get().expires_at == expected


@pytest.mark.parametrize(
    ("name", "expires_in", "field", "error"),
    [
        ("", "30", "name", "This field is required."),
        ("   ", "30", "name", "This field is required."),
        ("x" * 101, "30", "name", "Ensure this value has at most 100 characters (it has 101)."),
        ("taken", "30", "name", "You already have a token with this name."),
        ("lap\u202etop", "30", "name", "Remove the text-direction control U+202E"),
        ("laptop", "365", "expires_in", "Select a valid choice. 365 is not one of the available"),
    ],
    ids=["empty", "blank", "too-long", "duplicate", "hidden-character", "other-expiry"],
)
def test_a_refused_token_says_why_on_its_field_and_keeps_what_was_typed(
    client, developer, name, expires_in, field, error
):
    AccessTokenFactory(user=developer, name="taken")

    response = client.post(PAGE, {"name": name, "expires_in": expires_in})

    assert response.status_code == 200
    form = response.context["form"]
    assert error in " ".join(form.errors[field])
    assert form["name"].value() == name
    assert PersonalAccessToken.objects.count() == 1
    assert "OPENAI_API_KEY=" not in response.content.decode()


def test_a_name_taken_after_the_check_is_refused_on_its_field_by_the_database(
    client, developer, monkeypatch
):
    AccessTokenFactory(user=developer, name="laptop")
    # As when another request made it between this one's check and its insert.
    monkeypatch.setattr(PersonalAccessToken, "clean", lambda token: None)

    response = client.post(PAGE, {"name": "laptop", "expires_in": "30"})

    assert response.context["form"].errors == {"name": ["You already have a token with this name."]}
    assert PersonalAccessToken.objects.count() == 1


def test_a_revoked_tokens_name_may_be_used_again_and_another_developers_too(client, developer):
    AccessTokenFactory(user=developer, name="laptop", revoked_at=timezone.now())
    AccessTokenFactory(name="laptop")

    response = client.post(PAGE, {"name": "laptop", "expires_in": "never"})

    assert "OPENAI_API_KEY=" in response.content.decode()
    assert PersonalAccessToken.objects.filter(name="laptop").count() == 3


def test_the_page_lists_only_the_developers_own_tokens_with_their_state(client, developer):
    AccessTokenFactory(user=developer, name="mine-active")
    AccessTokenFactory(user=developer, name="mine-revoked", revoked_at=timezone.now())
    AccessTokenFactory(
        user=developer, name="mine-expired", expires_at=timezone.now() - timedelta(days=1)
    )
    AccessTokenFactory(name="someone-elses")

    page = client.get(PAGE).content.decode()

    rows = {
        name: page.split(name, 1)[1].split("</tr>", 1)[0]
        for name in ("mine-active", "mine-revoked", "mine-expired")
    }
    assert "<td>active</td>" in rows["mine-active"]
    assert "<td>revoked</td>" in rows["mine-revoked"]
    assert "<td>expired</td>" in rows["mine-expired"]
    assert "Revoke" not in rows["mine-revoked"]
    assert "someone-elses" not in page


def test_a_developer_revokes_their_token(client, developer):
    token = AccessTokenFactory(user=developer)

    response = client.post(revoke_url(token))

    assert (response.status_code, response["Location"]) == (302, PAGE)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert caller_of(gateway_request(token.secret)) is None


def test_another_developers_token_can_be_neither_seen_nor_revoked(client, developer):
    token = AccessTokenFactory()

    assert client.post(revoke_url(token)).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_revoking_takes_a_post(client, developer):
    token = AccessTokenFactory(user=developer)

    assert client.get(revoke_url(token)).status_code == 405
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.parametrize("action", ["create", "revoke"])
def test_the_pages_forms_need_the_csrf_token(developer, action):
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    token = AccessTokenFactory(user=developer)
    url = PAGE if action == "create" else revoke_url(token)

    assert client.post(url, {"name": "laptop", "expires_in": "30"}).status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
    assert PersonalAccessToken.objects.count() == 1


# caller_of: the token of a gateway request, and the gateway's policy

HEADER_FORMS = {
    "bearer": lambda secret: {"Authorization": f"Bearer {secret}"},
    "x-api-key": lambda secret: {"x-api-key": secret},
}


def gateway_request(
    secret: str, form: str = "bearer", user_agent: str = "claude-cli/2.0", body: object = None
):
    headers = {**HEADER_FORMS[form](secret), "User-Agent": user_agent}
    return RequestFactory().post(
        "/gateway/openai/v1/chat/completions",
        body or {},
        content_type="application/json",
        headers=headers,
    )


@pytest.mark.parametrize("form", HEADER_FORMS)
def test_a_token_acts_as_its_developer_with_the_client_named_by_its_user_agent(form):
    token = AccessTokenFactory()

    caller = caller_of(gateway_request(token.secret, form, user_agent="x" * 300))

    assert caller.user == token.user
    assert caller.token == token
    assert caller.client_name == "x" * CLIENT_NAME_LENGTH


def wrong_rest(token: PersonalAccessToken) -> str:
    return token.secret[:-4] + ("AAAA" if not token.secret.endswith("AAAA") else "BBBB")


REFUSED_TOKENS = {
    "revoked": lambda token: (token, {"revoked_at": timezone.now()}),
    "expired": lambda token: (token, {"expires_at": timezone.now() - timedelta(seconds=1)}),
    "inactive-developer": lambda token: (token, {}),
}
REFUSED_SECRETS = {
    "wrong-secret": wrong_rest,
    "wrong-prefix": lambda token: token.secret.replace(token.prefix, "0" * len(token.prefix)),
    "not-ours": lambda token: "sk-ant-api03-" + token.secret,
    "short-prefix": lambda token: "llma_abc_" + token.secret.rsplit("_", 1)[1],
    "prefix-only": lambda token: f"llma_{token.prefix}",
    "empty": lambda token: "",
    # Looked up, PostgreSQL refuses a NUL: a database error (a 503), not a wrong token.
    "nul-in-prefix": lambda token: token.secret.replace(token.prefix, "\x00" * len(token.prefix)),
}


@pytest.mark.parametrize("form", HEADER_FORMS)
@pytest.mark.parametrize("state", [*REFUSED_TOKENS, *REFUSED_SECRETS])
def test_caller_of_refuses_every_token_but_a_usable_one(form, state):
    token = AccessTokenFactory()
    secret = token.secret
    if state in REFUSED_TOKENS:
        PersonalAccessToken.objects.filter(pk=token.pk).update(**REFUSED_TOKENS[state](token)[1])
        if state == "inactive-developer":
            User.objects.filter(pk=token.user_id).update(is_active=False)
    else:
        secret = REFUSED_SECRETS[state](token)

    assert caller_of(gateway_request(secret, form)) is None


def test_a_bearer_header_of_another_scheme_is_no_token():
    token = AccessTokenFactory()
    request = RequestFactory().post("/", headers={"Authorization": f"Basic {token.secret}"})

    assert caller_of(request) is None


def test_the_token_and_the_policy_are_read_in_one_query_and_its_use_recorded_once_a_minute(
    django_assert_num_queries,
):
    token = AccessTokenFactory()
    request = gateway_request(token.secret)

    with time_machine.travel(NOW, tick=False):
        with django_assert_num_queries(2):  # the token with the policy; its first use
            caller_of(request)
        token.refresh_from_db()
        assert token.last_used_at == NOW
    with time_machine.travel(NOW + timedelta(seconds=59), tick=False), django_assert_num_queries(1):
        caller_of(request)
    token.refresh_from_db()
    assert token.last_used_at == NOW
    with time_machine.travel(NOW + timedelta(seconds=61), tick=False), django_assert_num_queries(2):
        caller_of(request)
    token.refresh_from_db()
    assert token.last_used_at == NOW + timedelta(seconds=61)


def test_a_callers_models_and_budget_are_read_with_their_token(django_assert_num_queries):
    token = AccessTokenFactory()
    UserBudget.objects.create(user=token.user, monthly_allowance=Decimal(25))
    model = LLMModelFactory(provider=ProviderFactory(openai=True))
    usable_models(caller_of(gateway_request(token.secret)).user)  # its first use recorded

    # The token with the policy, its developer's groups and budget, the configuration's
    # version; the models from the process's cached configuration.
    with django_assert_num_queries(1):
        rows, budget, _ = usable_models(caller_of(gateway_request(token.secret)).user)

    assert [row["id"] for row in rows] == [model.pk]
    assert budget.allowance == Allowance(Decimal(25), "override")


def test_a_use_another_process_has_just_recorded_is_not_written_again():
    token = AccessTokenFactory()
    with time_machine.travel(NOW, tick=False):
        token_used(token=token)
    # Another process records a later use; this one's copy of the token still reads NOW.
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    with time_machine.travel(NOW + timedelta(seconds=70), tick=False):
        token_used(token=token)

    token.refresh_from_db()
    assert token.last_used_at == NOW + timedelta(seconds=30)


@pytest.fixture
def policy() -> GatewayPolicy:
    # Made by the migration; a transactional test's flush would have removed it.
    return GatewayPolicy.objects.get_or_create(id=1)[0]


@pytest.mark.parametrize("form", HEADER_FORMS)
def test_the_gateway_closed_to_everybody_refuses_every_token_staff_included(policy, form):
    staff = UserFactory(is_staff=True, is_superuser=True)
    tokens = [AccessTokenFactory(), AccessTokenFactory(user=staff)]
    policy.enabled = False
    policy.save()

    for token in tokens:
        with pytest.raises(GatewayClosed):
            caller_of(gateway_request(token.secret, form))


def test_the_gateway_closed_to_a_group_refuses_its_members_only(policy):
    closed, other = Group.objects.create(name="contractors"), Group.objects.create(name="staff")
    policy.closed_to.add(closed)
    member, both, outsider = UserFactory(), UserFactory(), UserFactory()
    member.groups.add(closed)
    both.groups.add(closed, other)
    outsider.groups.add(other)

    for user in (member, both):
        with pytest.raises(GatewayClosed):
            caller_of(gateway_request(AccessTokenFactory(user=user).secret))
    assert caller_of(gateway_request(AccessTokenFactory(user=outsider).secret)).user == outsider
    assert caller_of(gateway_request(AccessTokenFactory().secret)) is not None


def test_a_closed_gateway_still_answers_a_wrong_token_as_unauthenticated(policy):
    policy.enabled = False
    policy.save()
    token = AccessTokenFactory()

    assert caller_of(gateway_request(wrong_rest(token))) is None


def test_a_refused_caller_leaves_no_last_use(policy):
    policy.enabled = False
    policy.save()
    token = AccessTokenFactory()

    with pytest.raises(GatewayClosed):
        caller_of(gateway_request(token.secret))
    token.refresh_from_db()
    assert token.last_used_at is None


CLOSED = "The gateway is closed to you: ask an administrator to open it."
OPENAI_PERMISSION = {"type": "invalid_request_error", "code": "permission_denied"}
ANTHROPIC_PERMISSION = {"type": "permission_error"}
GATEWAY_BODY = {"model": "no-such-model", "messages": [], "max_tokens": 10}


@pytest.mark.parametrize(
    ("method", "url", "error"),
    [
        ("get", "/gateway/openai/v1/models", OPENAI_PERMISSION),
        ("post", "/gateway/openai/v1/chat/completions", OPENAI_PERMISSION),
        ("post", "/gateway/openai/v1/responses", OPENAI_PERMISSION),
        ("get", "/gateway/anthropic/v1/models", ANTHROPIC_PERMISSION),
        ("post", "/gateway/anthropic/v1/messages", ANTHROPIC_PERMISSION),
        ("post", "/gateway/anthropic/v1/messages/count_tokens", ANTHROPIC_PERMISSION),
    ],
    ids=[
        "openai-models",
        "chat-completions",
        "responses",
        "anthropic-models",
        "messages",
        "count-tokens",
    ],
)
def test_every_gateway_endpoint_answers_a_caller_the_policy_refuses_403_in_its_apis_shape(
    policy, method, url, error
):
    policy.enabled = False
    policy.save()
    client = Client(headers={"Authorization": f"Bearer {AccessTokenFactory().secret}"})

    if method == "get":
        response = client.get(url)
    else:
        response = client.post(url, GATEWAY_BODY, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["error"] == {**response.json()["error"], **error, "message": CLOSED}


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        (reverse("admin:index"), 302),
        (reverse("api-models"), 403),
        (reverse("agents"), 302),
        (PAGE, 302),
    ],
    ids=["admin", "api", "agents", "tokens-page"],
)
@pytest.mark.parametrize("form", HEADER_FORMS)
def test_a_token_opens_nothing_but_the_gateway_not_even_for_staff(url, refusal, form):
    staff = UserFactory(is_staff=True, is_superuser=True)
    token = AccessTokenFactory(user=staff)

    response = Client().get(url, headers=HEADER_FORMS[form](token.secret))

    assert response.status_code == refusal


# The admin


def test_the_admin_lists_everyones_tokens_without_their_digests(admin_client):
    tokens = [
        AccessTokenFactory(user=UserFactory(username="alice"), name="laptop"),
        AccessTokenFactory(user=UserFactory(username="bob"), name="ci", revoked_at=NOW),
    ]

    page = admin_client.get(TOKEN_LIST).content.decode()

    for token in tokens:
        assert f"llma_{token.prefix}_…" in page
        assert token.digest not in page
        assert token.secret not in page
    for text in ("alice", "bob", "laptop", "ci", ">active<", ">revoked<"):
        assert text in page


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ({"q": "alice"}, {"laptop", "phone"}),
        ({"q": "phone"}, {"phone"}),
        ({"status": "active"}, {"laptop", "phone"}),
        ({"status": "expired"}, {"old"}),
        ({"status": "revoked"}, {"ci", "gone"}),
    ],
    ids=["search-username", "search-name", "active", "expired", "revoked"],
)
def test_the_admin_searches_by_username_and_name_and_filters_by_status(admin_client, query, found):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    AccessTokenFactory(user=alice, name="laptop")
    AccessTokenFactory(user=alice, name="phone")
    AccessTokenFactory(user=bob, name="ci", revoked_at=NOW)
    AccessTokenFactory(user=bob, name="old", expires_at=timezone.now() - timedelta(days=1))
    AccessTokenFactory(
        user=bob, name="gone", expires_at=timezone.now() - timedelta(days=1), revoked_at=NOW
    )

    response = admin_client.get(TOKEN_LIST, query)

    listed = {token.name for token in response.context["cl"].result_list}
    assert listed == found


def test_an_admin_revokes_anyones_tokens_and_the_audit_names_them(admin_client, admin_user):
    tokens = [AccessTokenFactory(), AccessTokenFactory()]
    kept = AccessTokenFactory()

    response = admin_client.post(
        TOKEN_LIST,
        {"action": "revoke", "_selected_action": [token.pk for token in tokens]},
        follow=True,
    )

    assert "Revoked 2 token(s)." in response.content.decode()
    for token in tokens:
        assert caller_of(gateway_request(token.secret)) is None
        entry = AuditEntry.objects.get_for_object(token).get(action=AuditEntry.Action.UPDATE)
        assert entry.actor == admin_user
        assert list(entry.changes_dict) == ["revoked_at"]
    assert caller_of(gateway_request(kept.secret)) is not None


def test_the_admin_makes_and_deletes_no_token(admin_client):
    token = AccessTokenFactory()

    assert admin_client.get(reverse("admin:gateway_personalaccesstoken_add")).status_code == 403
    delete = reverse("admin:gateway_personalaccesstoken_delete", args=[token.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert PersonalAccessToken.objects.filter(pk=token.pk).exists()


@pytest.fixture
def viewer() -> Client:
    """Staff who may view tokens and the policy, and change nothing."""
    user = UserFactory(username="viewer", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="gateway", codename__startswith="view_")
    )
    client = Client()
    client.force_login(user)
    return client


def test_view_only_staff_learn_nothing_secret_and_cannot_revoke(viewer):
    token = AccessTokenFactory()
    change = reverse("admin:gateway_personalaccesstoken_change", args=[token.pk])

    pages = [
        viewer.get(TOKEN_LIST).content.decode(),
        viewer.get(change).content.decode(),
        viewer.get(
            reverse("admin:gateway_personalaccesstoken_history", args=[token.pk])
        ).content.decode(),
    ]
    assert f"llma_{token.prefix}_…" in pages[1]
    assert not [page for page in pages if token.digest in page or token.secret in page]
    assert 'value="revoke"' not in pages[0]
    # Nothing probes the digest: no lookup on it, no search, no ordering reads it.
    assert viewer.get(TOKEN_LIST, {"digest__startswith": token.digest[0]}).status_code == 400
    assert not viewer.get(TOKEN_LIST, {"q": token.digest}).context["cl"].result_list
    assert not viewer.get(TOKEN_LIST, {"q": token.secret}).context["cl"].result_list
    for column in range(1, 8):  # sorted by each column: none is the digest
        assert viewer.get(TOKEN_LIST, {"o": str(column)}).status_code == 200

    viewer.post(TOKEN_LIST, {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_admin_closes_the_gateway_to_a_group_and_reopens_it(admin_client, policy):
    group = Group.objects.create(name="contractors")
    member = UserFactory()
    member.groups.add(group)
    token = AccessTokenFactory(user=member)
    change = reverse("admin:gateway_gatewaypolicy_change", args=[policy.pk])

    admin_client.post(change, {"enabled": "on", "closed_to": [group.pk]})
    with pytest.raises(GatewayClosed):
        caller_of(gateway_request(token.secret))

    admin_client.post(change, {"enabled": "on"})
    assert caller_of(gateway_request(token.secret)).user == member
    assert admin_client.get(reverse("admin:gateway_gatewaypolicy_add")).status_code == 403


# manage.py create_token


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_token_prints_the_secret_once_with_the_environment_lines():
    user = UserFactory(username="ci-bot")

    with time_machine.travel(NOW, tick=False):
        out, err = run(
            "ci-bot", "--name", "nightly", "--expires-in", "7", "--base-url", "https://llm.example/"
        )

    secret = out.splitlines()[0]
    token = PersonalAccessToken.objects.get()
    assert (token.user, token.name, token.digest) == (user, "nightly", sha256(secret))
    assert token.expires_at == NOW + timedelta(days=7)
    assert out.splitlines()[2:] == [
        "OPENAI_BASE_URL=https://llm.example/gateway/openai/v1",
        f"OPENAI_API_KEY={secret}",
        "ANTHROPIC_BASE_URL=https://llm.example/gateway/anthropic",
        f"ANTHROPIC_AUTH_TOKEN={secret}",
    ]
    assert secret not in err
    assert "expires 2026-12-12" in err
    assert caller_of(gateway_request(secret)).user == user


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["nobody", "--name", "x"], "No user is named 'nobody'."),
        (["retired", "--name", "x"], "'retired' is deactivated"),
        (["ci-bot", "--name", "x", "--expires-in", "0"], "invalid days value: '0'"),
        (["ci-bot", "--name", "x", "--expires-in", "-3"], "invalid days value: '-3'"),
        (["ci-bot", "--name", "x", "--expires-in", "soon"], "invalid days value: 'soon'"),
        (["ci-bot", "--name", "x", "--expires-in", "3651"], "invalid days value: '3651'"),
        (["ci-bot", "--name", "taken"], "You already have a token with this name."),
        (["ci-bot", "--name", ""], "This field cannot be blank."),
        (["ci-bot"], "the following arguments are required: --name"),
        # What Python makes of bytes that aren't UTF-8 on the command line (\xff).
        (["ci-\udcff", "--name", "x"], "argument username: is not UTF-8 text"),
        (["ci-bot", "--name", "x\udcff"], "argument --name: is not UTF-8 text"),
    ],
    ids=[
        "unknown-user",
        "inactive-user",
        "zero-days",
        "negative-days",
        "not-days",
        "too-many-days",
        "duplicate",
        "empty-name",
        "no-name",
        "username-not-utf8",
        "name-not-utf8",
    ],
)
def test_create_token_refuses_clearly(args, error):
    AccessTokenFactory(user=UserFactory(username="ci-bot"), name="taken")
    UserFactory(username="retired", is_active=False)

    with pytest.raises(CommandError, match=error):
        run(*args)
    assert PersonalAccessToken.objects.count() == 1


# The audit, and the configuration export


def test_the_audit_records_made_and_revoked_with_the_developer_and_never_the_secret(
    client, developer
):
    secret = created_secret(client.post(PAGE, {"name": "laptop", "expires_in": "30"}))
    token = PersonalAccessToken.objects.get()
    client.post(revoke_url(token))

    entries = AuditEntry.objects.get_for_object(token).order_by("pk")
    assert [(entry.action, entry.actor) for entry in entries] == [
        (AuditEntry.Action.CREATE, developer),
        (AuditEntry.Action.UPDATE, developer),
    ]
    assert "name" in entries[0].changes_dict
    assert "digest" not in entries[0].changes_dict
    recorded = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert token.digest not in recorded
    assert secret not in recorded
    assert token.prefix in recorded  # the entries name the token as lists show it


def test_the_configuration_export_holds_no_token():
    token = AccessTokenFactory(name="export-probe")
    out = io.StringIO()

    call_command("export_config", "--format", "json", stdout=out)

    exported = out.getvalue()
    for text in (token.name, token.prefix, token.digest, token.secret):
        assert text not in exported
