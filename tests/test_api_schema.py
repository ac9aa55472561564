"""The API keeps to its OpenAPI schema: generated requests (schemathesis), and each documented
response."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import schemathesis
from django.contrib import auth
from django.contrib.auth.models import Group, User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import DeveloperLimits, GroupLimits, UserBudget
from chat.models import Conversation, Message
from config.sessions import SessionStore
from config.wsgi import application
from llmadmin.models import LoginSession
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

CSRF = "a" * 32  # any 32 letters and digits: Django compares the header with the cookie
# What a response must keep to, whoever sent the request.
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def generated_schema() -> dict:
    """The schema drf-spectacular builds for our URLs (what /api/schema/ serves, as JSON)."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


# Loaded when the module is collected: schemathesis' fixture-based loader does not run under
# pytest 9 (it sets a node attribute pytest no longer has). Calls go through WSGI in-process.
schema = schemathesis.openapi.from_dict(generated_schema())
schema.app = application


# The developer's session has a key fixed in advance: schemathesis builds some cases while
# collecting tests, before any database exists; `api_data` stores the session under this key.
SESSION_KEY = "schemathesis-developer-session"
COOKIES = {"sessionid": SESSION_KEY, "csrftoken": CSRF}


@schema.auth()
class DeveloperSession:
    """The developer's session cookie, and the CSRF pair session auth wants on a POST.

    Not applied to the cases that test a missing session (schemathesis leaves those out).
    """

    def get(self, case, context) -> dict[str, str]:
        return COOKIES

    def set(self, case, cookies: dict[str, str], context) -> None:
        case.cookies = {**(case.cookies or {}), **cookies}
        case.headers = {**(case.headers or {}), "X-CSRFToken": CSRF}


def open_session(user: User) -> None:
    """What logging in stores, under SESSION_KEY."""
    logged_in = {
        auth.SESSION_KEY: str(user.pk),
        auth.BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
        auth.HASH_SESSION_KEY: user.get_session_auth_hash(),
    }
    LoginSession.objects.create(
        session_key=SESSION_KEY,
        session_data=SessionStore().encode(logged_in),
        expire_date=timezone.now() + timedelta(hours=1),
        user=user,
    )


@pytest.fixture(autouse=True)
def connection_kept_open():
    """As Django's test client does: the end of a request (here through the WSGI app itself)
    must not close the database connection that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_data(django_user_model) -> dict[str, int]:
    """Something for every response to show, and nothing a chat could reach but loopback."""
    developer = django_user_model.objects.create_user("dev")
    open_session(developer)
    # A well-formed chat naming the model is refused before it streams (an event stream is
    # not something the WSGI transport can read): a hypothesis id can match the model's on
    # PostgreSQL, whose ids don't restart with each test.
    UserBudget.objects.create(user=developer, monthly_allowance=0)
    # Limits set, one by a group, one of their own, one not: each shape of a limit shown.
    team = Group.objects.create(name="backend")
    team.user_set.add(developer)
    GroupLimits.objects.create(group=team, requests_per_minute=60)
    DeveloperLimits.objects.create(user=developer, concurrent_turns=2)
    # Chatting with it fails at once: nothing listens on the discard port.
    available = ProviderFactory(anthropic=True, base_url="http://127.0.0.1:9")
    model = LLMModelFactory(provider=available, display_name="Claude Haiku", is_default=True)
    LLMModelFactory(provider=ProviderFactory(openai=True, no_key=True))
    # A type's second account: a group and an unavailable entry of the same type.
    second = ProviderFactory(anthropic=True, name="Anthropic EU", base_url="http://127.0.0.1:9")
    LLMModelFactory(provider=second, identifier=model.identifier)
    LLMModelFactory(provider=ProviderFactory(openai=True, name="OpenAI EU", enabled=False))
    mine = Conversation.objects.create(owner=developer, model=model)
    Message.objects.create(conversation=mine, role="user", content="Hi", input_tokens=3)
    theirs = Conversation.objects.create(owner=django_user_model.objects.create_user("other"))
    return {"model": model.pk, "mine": mine.pk, "theirs": theirs.pk}


@schema.parametrize()
@settings(
    max_examples=100,
    derandomize=True,  # the same cases on every run: a failure is reproducible, not luck
    deadline=None,
    database=None,  # no .hypothesis/ directory in the project
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_keeps_to_its_schema(case, api_data):
    if case.operation.path == "/api/v1/chat/":
        # A model_id or conversation_id names a row: the schema can't say which exist, so a
        # well-formed chat naming none is rightly a 400 (with nothing sent to a provider).
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
    else:
        case.call_and_validate()


def test_the_schema_tested_is_the_one_served(api_data, client):
    client.cookies["sessionid"] = SESSION_KEY

    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json")

    assert response.json() == generated_schema()


def test_every_operation_documents_its_refusals():
    documented = {
        (operation.method.upper(), operation.path): sorted(operation.definition.raw["responses"])
        for operation in (result.ok() for result in schema.get_all_operations())
    }

    assert documented == {
        ("GET", "/api/v1/models/"): ["200", "304", "403", "503"],
        ("POST", "/api/v1/chat/"): ["200", "400", "402", "403", "415", "429", "503"],
        ("GET", "/api/v1/usage/"): ["200", "400", "403", "503"],
        ("GET", "/api/v1/conversations/{id}/"): ["200", "403", "404", "503"],
    }


def test_the_schema_says_a_message_may_not_be_empty():
    body = schema["/api/v1/chat/"]["POST"].definition.raw["requestBody"]
    reference = body["content"]["application/json"]["schema"]["$ref"]

    chat_turn = schema.raw_schema["components"]["schemas"][reference.rsplit("/", 1)[1]]
    assert chat_turn["properties"]["message"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 200_000,
    }


# Each documented response, sent on purpose and checked against the schema.


def call(operation: tuple[str, str], cookies: dict[str, str] | None = None, **case_fields):
    case = schema[operation[0]][operation[1]].Case(**case_fields)
    headers = {"X-CSRFToken": CSRF} if cookies else None
    response = case.call(cookies=cookies, headers=headers)
    case.validate_response(response, checks=CONFORMANCE)
    return response


CHAT = ("/api/v1/chat/", "POST")
CONVERSATION = ("/api/v1/conversations/{id}/", "GET")
MODELS = ("/api/v1/models/", "GET")


@pytest.mark.parametrize(
    "message", [pytest.param("", id="empty"), pytest.param(" \n\t", id="only whitespace")]
)
def test_an_empty_message_is_a_400_on_its_field(api_data, message):
    response = call(
        CHAT,
        COOKIES,
        body={"model_id": api_data["model"], "message": message},
        media_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"message": ["This field may not be blank."]}
    assert list(Message.objects.values_list("content", flat=True)) == ["Hi"]


def test_a_model_that_is_not_available_is_a_400_on_its_field(api_data):
    response = call(
        CHAT, COOKIES, body={"model_id": 0, "message": "Hi"}, media_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"model_id": ["This model is not available for chat."]}


@pytest.mark.parametrize(
    ("operation", "case_fields"),
    [
        pytest.param(MODELS, {}, id="models"),
        pytest.param(CONVERSATION, {"path_parameters": {"id": 1}}, id="conversation"),
        pytest.param(
            CHAT,
            {"body": {"model_id": 1, "message": "Hi"}, "media_type": "application/json"},
            id="chat",
        ),
    ],
)
def test_a_request_without_a_session_is_a_documented_403(api_data, operation, case_fields):
    response = call(operation, **case_fields)

    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_a_chat_without_a_csrf_token_is_a_documented_403(api_data):
    case = schema[CHAT[0]][CHAT[1]].Case(
        body={"model_id": api_data["model"], "message": "Hi"}, media_type="application/json"
    )

    response = case.call(cookies=COOKIES)  # both cookies, as a cross-site form would send

    case.validate_response(response, checks=CONFORMANCE)
    assert response.status_code == 403
    assert response.json() == {"detail": "CSRF Failed: CSRF token missing."}
    assert list(Message.objects.values_list("content", flat=True)) == ["Hi"]


@pytest.mark.parametrize(
    "whose", [pytest.param("theirs", id="another user's"), pytest.param("none", id="none such")]
)
def test_a_conversation_that_is_not_yours_is_a_documented_404(api_data, whose):
    pk = api_data["theirs"] if whose == "theirs" else api_data["theirs"] + 1000

    response = call(CONVERSATION, COOKIES, path_parameters={"id": pk})

    assert response.status_code == 404
    assert response.json() == {"detail": "No Conversation matches the given query."}


def test_your_conversation_is_a_documented_200(api_data):
    response = call(CONVERSATION, COOKIES, path_parameters={"id": api_data["mine"]})

    assert response.status_code == 200
    assert [message["content"] for message in response.json()["messages"]] == ["Hi"]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/v1/conversations/abc/", id="an id that is not a number"),
        pytest.param("/api/v1/conversations/-1/", id="a negative id"),
        pytest.param("/api/v2/models/", id="no such route"),
    ],
)
def test_an_api_url_that_matches_no_route_is_a_json_404(client, path):
    response = client.get(path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_a_page_that_does_not_exist_is_still_an_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>Not Found</h1>" in response.text


def test_a_chat_posted_as_a_form_is_a_documented_415(api_data):
    response = call(
        CHAT,
        COOKIES,
        body={"model_id": api_data["model"], "message": "Hi"},
        media_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 415
    assert response.json() == {
        "detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'
    }


def test_the_chats_429_declares_its_retry_after_header():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    refusal = schema["paths"]["/api/v1/chat/"]["post"]["responses"]["429"]
    assert refusal["headers"]["Retry-After"]["schema"]["type"] == "integer"
