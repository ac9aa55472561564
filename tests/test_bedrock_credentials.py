"""AWS Bedrock as AWS users run it: IAM access keys (with or without a session token) signed
with SigV4, the server's own credentials from botocore's default chain, permissions an IAM
policy withholds, and the admin, key rotation and configuration files around those
credentials."""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from chat.models import Message
from chat.services import UNAVAILABLE
from llmadmin.configuration import ConfigurationError, import_configuration
from llmadmin.forms import ProviderAdminForm
from llmadmin.models import Provider
from llmadmin.providers import bedrock
from llmadmin.providers.bedrock import BedrockClient
from llmadmin.providers.errors import LacksPermission
from llmadmin.services import provider_check_connection
from tests.admin_forms import provider_form_data
from tests.chat_api import send, stored_messages, texts
from tests.factories import LLMModelFactory, ProviderFactory, provider_at
from tests.providers.bedrock.fake import SIGNATURE_VERDICT
from tests.providers.fakes import FakeProvider, serve
from tests.providers.servers import Recorded

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parent.parent
# AWS's documented example credentials; the fakes are the only ones that know them.
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//SESSIONTOKEN+abc=="
REGION = "eu-west-1"
UNUSED_API_KEY = "ABSK-never-sent"  # the fakes' Bedrock API key: never what these tests send
SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
HI = [{"role": "user", "content": [{"text": "Hi"}]}]

VERIFIED = "The provider accepted the API key."
REJECTED = "The provider refused the API key (403): it is wrong or lacks permission."
NO_LIST_PERMISSION = (
    "The credentials lack permission to list models (403): allow "
    "bedrock:ListFoundationModels and bedrock:ListInferenceProfiles."
)
NO_CHAT_PERMISSION = (
    "The credentials lack permission to call this model (403): allow "
    "bedrock:InvokeModelWithResponseStream."
)
NO_SERVER_CREDENTIALS = (
    "The server has no AWS credentials (environment, shared config, or a container or "
    "instance role)."
)


@dataclass
class SigV4Fake(FakeProvider):
    """The fake Bedrock that knows the IAM access keys, and also keeps each request as it
    arrived (method, path with its query, body bytes): what a signature covers."""

    raw: list[tuple[str, str, bytes]] = field(default_factory=list)

    def check_signature(self, handler, headers, body) -> None:
        self.raw.append((handler.command, handler.path, body))
        super().check_signature(handler, headers, body)


def sigv4_fake(token: str | None = None, **fields) -> SigV4Fake:
    return SigV4Fake(
        "bedrock",
        UNUSED_API_KEY,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=token or "",
        **fields,
    )


def iam_provider(server: FakeProvider, **fields) -> Provider:
    """The Bedrock provider pointed at the fake, with IAM access keys instead of an API key."""
    credentials = {
        "auth": "aws_keys",
        "api_key": None,
        "region": REGION,
        "aws_access_key_id": ACCESS_KEY_ID,
        "aws_secret_access_key": SECRET,
        "aws_session_token": None,
    }
    return provider_at("bedrock", server.url, **{**credentials, **fields})


def signed_headers(authorization: str) -> list[str]:
    return authorization.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";")


def scope(recorded: Recorded) -> str:
    """The credential scope the request was signed for, with its access key id."""
    return recorded.headers["authorization"].split("Credential=", 1)[1].split(",", 1)[0]


def expected_scope(recorded: Recorded, access_key_id: str = ACCESS_KEY_ID) -> str:
    day = recorded.headers["x-amz-date"][:8]
    return f"{access_key_id}/{day}/{REGION}/bedrock/aws4_request"


def signed_at(timestamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ")


def frozen_botocore_clock(at: datetime.datetime):
    """botocore's signers read the time here (botocore.auth imports get_current_datetime)."""
    return mock.patch("botocore.auth.get_current_datetime", return_value=at)


# --- 1. IAM access keys, signed with SigV4 -----------------------------------------------------

TOKENS = [
    pytest.param(None, id="long-term access key"),
    pytest.param(TOKEN, id="temporary credentials with a session token"),
]


@pytest.mark.parametrize("token", TOKENS)
def test_iam_access_keys_are_verified_with_a_sigv4_signature(token):
    with serve(sigv4_fake(token)) as server:
        provider = iam_provider(server, aws_session_token=token)
        result = provider_check_connection(provider=provider)

    assert result == ("verified", VERIFIED)
    provider.refresh_from_db()
    assert (provider.check_status, provider.check_reason) == ("verified", VERIFIED)
    (request,) = server.requests
    assert (request.method, request.path, request.query) == (
        "GET",
        "/foundation-models",
        {"byOutputModality": ["TEXT"]},
    )
    assert request.headers[SIGNATURE_VERDICT] == "valid"
    assert scope(request) == expected_scope(request)
    assert request.headers.get("x-amz-security-token") == token
    assert SECRET not in json.dumps(request.headers)


# fmt: off
WRONG_CREDENTIALS = [  # (what the fake knows, what the provider holds)
    pytest.param({}, {"aws_secret_access_key": "another/secret/key"}, id="wrong secret"),
    pytest.param({}, {"aws_access_key_id": "AKIAANOTHERKEY000000"}, id="wrong access key id"),
    pytest.param({"token": TOKEN}, {}, id="temporary credentials without their session token"),
    pytest.param({"token": TOKEN}, {"aws_session_token": "another-token"},
                 id="wrong session token"),
    pytest.param({}, {"aws_session_token": TOKEN}, id="a session token with long-term keys"),
]
# fmt: on


@pytest.mark.parametrize(("fake", "fields"), WRONG_CREDENTIALS)
def test_credentials_the_fake_does_not_accept_are_rejected(fake, fields):
    with serve(sigv4_fake(**fake)) as server:
        provider = iam_provider(server, **fields)
        result = provider_check_connection(provider=provider)

    assert result == ("rejected", REJECTED)
    provider.refresh_from_db()
    assert (provider.check_status, provider.check_reason) == ("rejected", REJECTED)
    assert provider.availability == "key_rejected"
    (request,) = server.requests
    assert request.headers[SIGNATURE_VERDICT] == ""  # signed, but not with what AWS knows


@pytest.mark.parametrize("token", TOKENS)
def test_a_chat_is_streamed_through_a_signed_request(client, developer, token):
    # The fake checks the signature over the body it received: an answer proves the POST body
    # was signed as sent.
    with serve(sigv4_fake(token)) as server:
        provider = iam_provider(server, aws_session_token=token)
        events = send(client, LLMModelFactory(provider=provider, identifier=SONNET))

    assert texts(events) == ["Hello", " world"]
    assert (events[-2][1]["input_tokens"], events[-2][1]["output_tokens"]) == (12, 5)
    assert (events[-2][1]["stop_reason"], events[-2][1]["notice"]) == ("complete", None)
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "Hello world", "")]
    (request,) = server.requests
    assert (request.method, request.path) == (
        "POST",
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
    )
    assert request.body == {"messages": HI}
    assert request.headers[SIGNATURE_VERDICT] == "valid"
    assert request.headers.get("x-amz-security-token") == token
    assert request.headers["user-agent"].startswith("llmadmin/")  # sent, and the signature holds


def test_a_signature_of_another_body_is_refused(client, developer, monkeypatch):
    """The control for the test above: the fake does check the body against the signature."""
    sign = BedrockClient.authorize

    def sign_another_body(self, method, url, headers, body):
        return sign(self, method, url, headers, body + b" ")

    monkeypatch.setattr(BedrockClient, "authorize", sign_another_body)
    with serve(sigv4_fake()) as server:
        events = send(client, LLMModelFactory(provider=iam_provider(server), identifier=SONNET))

    assert events[1:] == [("error", {"message": UNAVAILABLE, "stop_reason": "failed"})]
    assert server.requests[0].headers[SIGNATURE_VERDICT] == ""


def test_a_chat_with_a_wrong_secret_is_refused_without_showing_it(client, developer, caplog):
    with serve(sigv4_fake()) as server:
        provider = iam_provider(server, aws_secret_access_key="another/secret/key")
        events = send(client, LLMModelFactory(provider=provider, identifier=SONNET))

    # The admin's to fix: logged; the developer is told the model is unavailable.
    assert REJECTED in caplog.text
    assert events[1:] == [("error", {"message": UNAVAILABLE, "stop_reason": "failed"})]
    assert "another/secret/key" not in json.dumps(events)
    # The turn is recorded as it ended: no text, our message.
    assert stored_messages() == [("user", "Hi", ""), ("assistant", "", UNAVAILABLE)]


# --- 2. The signature is botocore's ----------------------------------------------------------


def botocore_authorization(
    method: str, path: str, headers: dict[str, str], body: bytes, host: str, token: str | None
) -> str:
    """The Authorization header botocore's SigV4 signer computes for this request, at the time
    the request says it was signed, over the headers it says it signed."""
    names = signed_headers(headers["authorization"])
    request = AWSRequest(
        method=method,
        url=f"http://{host}{path}",
        data=body,
        headers={name: headers[name] for name in names},
    )
    signer = SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET, token), "bedrock", REGION)
    with frozen_botocore_clock(signed_at(headers["x-amz-date"])):
        signer.add_auth(request)  # sets request.context["timestamp"] from the clock
    return request.headers["Authorization"]


@pytest.mark.parametrize("token", TOKENS)
def test_the_authorization_header_is_the_one_botocore_computes(client, developer, token):
    with serve(sigv4_fake(token)) as server:
        provider = iam_provider(server, aws_session_token=token)
        assert provider_check_connection(provider=provider)[0] == "verified"
        provider.client().list_models()
        send(client, LLMModelFactory(provider=provider, identifier=SONNET))

    host = server.url.removeprefix("http://")
    session_token = ["x-amz-security-token"] if token else []
    expected_signed = {
        "/foundation-models?byOutputModality=TEXT": ["accept", "host", "x-amz-date"],
        "/inference-profiles?maxResults=1000": ["accept", "host", "x-amz-date"],
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream": [
            "accept",
            "content-type",
            "host",
            "x-amz-date",
        ],
    }
    assert [path for _, path, _ in server.raw] == [
        "/foundation-models?byOutputModality=TEXT",
        "/foundation-models?byOutputModality=TEXT",
        "/inference-profiles?maxResults=1000",
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream",
    ]
    for recorded, (method, path, body) in zip(server.requests, server.raw, strict=True):
        authorization = recorded.headers["authorization"]
        assert authorization == botocore_authorization(
            method, path, recorded.headers, body, host, token
        )
        assert signed_headers(authorization) == expected_signed[path] + session_token
        assert not authorization.startswith("Bearer")
        assert recorded.headers.get("x-amz-security-token") == token


@pytest.mark.parametrize("token", TOKENS)
def test_the_project_signs_as_botocores_own_client(client, developer, token):
    # One frozen instant for both: the same X-Amz-Date and credential scope.
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    with frozen_botocore_clock(now), serve(sigv4_fake(token)) as server:
        runtime = botocore.session.get_session().create_client(
            "bedrock-runtime",
            region_name=REGION,
            endpoint_url=server.url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET,
            aws_session_token=token,
            config=Config(retries={"max_attempts": 1}),
        )
        answer = runtime.converse_stream(modelId=SONNET, messages=HI)
        deltas = [
            e["contentBlockDelta"]["delta"]["text"]
            for e in answer["stream"]
            if "contentBlockDelta" in e
        ]
        provider = iam_provider(server, aws_session_token=token)
        send(client, LLMModelFactory(provider=provider, identifier=SONNET))

        (theirs, ours), (their_raw, our_raw) = server.requests, server.raw
        # botocore's client sends no Accept header and signs content-type, host and x-amz-date
        # (its amz-sdk-* headers are added after signing); the project also signs the Accept
        # it sends, so the two signatures differ by that header alone. What must match is the
        # signer: fed botocore's request, the project's signer (same canonical request,
        # credential scope and signing key derivation) gives botocore's header exactly.
        their_headers = {
            name: theirs.headers[name]
            for name in signed_headers(theirs.headers["authorization"])
            if name not in ("host", "x-amz-date", "x-amz-security-token")
        }
        resigned = provider.client().authorize(
            "POST", f"{server.url}{their_raw[1]}", their_headers, their_raw[2]
        )

    assert "".join(deltas) == "Hello world"  # the fake accepted botocore's signature
    assert theirs.headers[SIGNATURE_VERDICT] == ours.headers[SIGNATURE_VERDICT] == "valid"
    assert resigned["Authorization"] == theirs.headers["authorization"]
    assert our_raw == their_raw  # method, path with its query, body bytes
    assert ours.headers["x-amz-date"] == theirs.headers["x-amz-date"] == f"{now:%Y%m%dT%H%M%SZ}"
    assert scope(ours) == scope(theirs) == expected_scope(ours)
    assert ours.headers.get("x-amz-security-token") == theirs.headers.get("x-amz-security-token")
    assert "accept" not in theirs.headers
    assert signed_headers(ours.headers["authorization"]) == [
        "accept",
        *signed_headers(theirs.headers["authorization"]),
    ]


@dataclass
class TokenPagedProfiles(SigV4Fake):
    """Inference profiles in two pages, behind a nextToken with characters a query encodes."""

    def answer_bedrock(self, path, query, headers):
        status, payload = super().answer_bedrock(path, query, headers)
        if path == "/inference-profiles" and status == 200:
            if query.get("nextToken") == [NEXT_TOKEN]:
                return 200, {"inferenceProfileSummaries": [{"inferenceProfileId": "eu.model"}]}
            return 200, {**payload, "nextToken": NEXT_TOKEN}
        return status, payload


NEXT_TOKEN = "eyJwYWdlIjoy+fQ/x=="


def test_signed_model_lists_ask_what_botocore_asks():
    fake = TokenPagedProfiles(
        "bedrock", UNUSED_API_KEY, aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET
    )
    with serve(fake) as server:
        control = botocore.session.get_session().create_client(
            "bedrock",
            region_name=REGION,
            endpoint_url=server.url,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET,
            config=Config(retries={"max_attempts": 1}),
        )
        foundation = control.list_foundation_models(byOutputModality="TEXT")["modelSummaries"]
        pages = control.get_paginator("list_inference_profiles").paginate(
            PaginationConfig={"PageSize": 1000}
        )
        profiles = [item for page in pages for item in page["inferenceProfileSummaries"]]
        theirs = [(method, path) for method, path, _ in server.raw]
        server.raw.clear()
        server.requests.clear()
        ours = iam_provider(server).client().list_models()

    # botocore hands back every summary; the project keeps those called by their own id.
    assert [model.identifier for model in ours] == [
        *(
            m["modelId"]
            for m in foundation
            if "TEXT" in m["outputModalities"] and "ON_DEMAND" in m["inferenceTypesSupported"]
        ),
        *(p["inferenceProfileId"] for p in profiles),
    ]
    assert (
        [(method, path) for method, path, _ in server.raw]
        == theirs
        == [
            ("GET", "/foundation-models?byOutputModality=TEXT"),
            ("GET", "/inference-profiles?maxResults=1000"),
            ("GET", "/inference-profiles?maxResults=1000&nextToken=eyJwYWdlIjoy%2BfQ%2Fx%3D%3D"),
        ]
    )
    assert [r.headers[SIGNATURE_VERDICT] for r in server.requests] == ["valid"] * 3


# --- 3. The server's own credentials: botocore's default chain ------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys

    import django

    django.setup()

    from llmadmin.providers import PROVIDER_TYPES
    from llmadmin.providers.errors import ProviderError

    client = PROVIDER_TYPES["bedrock"].connect(
        base_url=sys.argv[1], region="eu-west-1", auth="default_chain"
    )
    try:
        client.verify()
    except ProviderError as error:
        print(error)
        sys.exit(1)
    print("verified")
    """
)


def run_with_environment(url: str, home: Path, **aws: str) -> subprocess.CompletedProcess:
    """The provider layer in a fresh process, whose environment holds only these AWS variables:
    no shared config, no instance metadata (botocore never tries the metadata address)."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ENV_FILE": "/nonexistent/.env",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/nonexistent/config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
        "BOTO_CONFIG": "/nonexistent/boto",
        **aws,
    }
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, url],
        env=environment,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


ENVIRONMENT_KEYS = {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}

# fmt: off
CHAINS = [  # (the process's AWS variables, its exit code and output)
    pytest.param(ENVIRONMENT_KEYS, 0, "verified", id="access keys in the environment"),
    pytest.param({**ENVIRONMENT_KEYS, "AWS_SESSION_TOKEN": TOKEN}, 0, "verified",
                 id="temporary credentials in the environment"),
    pytest.param({**ENVIRONMENT_KEYS, "AWS_SECRET_ACCESS_KEY": "another/secret/key"}, 1,
                 REJECTED, id="a wrong secret in the environment"),
    pytest.param({}, 1, NO_SERVER_CREDENTIALS, id="no credentials anywhere"),
    pytest.param({"AWS_PROFILE": "no-such-profile"}, 1,
                 "The server's AWS credentials could not be loaded.", id="a missing profile"),
]
# fmt: on


@pytest.mark.parametrize(("aws", "code", "output"), CHAINS)
def test_the_default_chain_reads_the_servers_credentials(tmp_path, aws, code, output):
    token = aws.get("AWS_SESSION_TOKEN")
    with serve(sigv4_fake(token)) as server:
        result = run_with_environment(server.url, tmp_path, **aws)

    assert (result.returncode, result.stdout) == (code, output + "\n"), result.stderr
    if code == 1 and output != REJECTED:
        assert server.requests == []  # nothing to sign with: nothing sent
        return
    (request,) = server.requests
    assert f"Credential={ACCESS_KEY_ID}/" in request.headers["authorization"]
    assert scope(request) == expected_scope(request)
    assert request.headers.get("x-amz-security-token") == token


def test_a_default_chain_provider_needs_no_stored_secret(client, developer, monkeypatch):
    # In this process the chain is replaced, never resolved: it would read this machine's.
    monkeypatch.setattr(
        bedrock, "server_credentials", lambda: Credentials(ACCESS_KEY_ID, SECRET, TOKEN)
    )
    with serve(sigv4_fake(TOKEN)) as server:
        provider = provider_at(
            "bedrock", server.url, api_key=None, auth="default_chain", region=REGION
        )
        assert (provider.key_state, provider.availability) == ("server", "available")
        result = provider_check_connection(provider=provider)
        events = send(client, LLMModelFactory(provider=provider, identifier=SONNET))

    assert result == ("verified", VERIFIED)
    assert texts(events) == ["Hello", " world"]
    assert [r.headers[SIGNATURE_VERDICT] for r in server.requests] == ["valid", "valid"]
    stored = Provider.objects.filter(pk=provider.pk).values_list(
        "api_key", "aws_secret_access_key", "aws_session_token"
    )
    assert list(stored) == [(None, None, None)]


def test_a_server_without_credentials_is_reported_to_the_admin_and_takes_the_models_out(
    client, developer, monkeypatch, caplog
):
    monkeypatch.setattr(bedrock, "server_credentials", lambda: None)
    with serve(sigv4_fake()) as server:
        provider = provider_at(
            "bedrock", server.url, api_key=None, auth="default_chain", region=REGION
        )
        model = LLMModelFactory(provider=provider, identifier=SONNET)
        # Untested, the server's credentials are resolved when called: the model is offered.
        events = send(client, model)
        result = provider_check_connection(provider=provider)
        listed = client.get("/api/v1/models/").json()

    # The developer is never told how the server is set up; the log says.
    assert NO_SERVER_CREDENTIALS in caplog.text
    assert events[1:] == [("error", {"message": UNAVAILABLE, "stop_reason": "failed"})]
    assert result == ("unreachable", NO_SERVER_CREDENTIALS)
    assert listed["groups"] == []
    assert [p["reason"] for p in listed["unavailable_providers"]] == ["connection_failed"]
    assert server.requests == []


# --- 4. Permissions an IAM policy withholds --------------------------------------------------


def test_a_list_the_credentials_may_not_make_is_recorded_as_no_permission():
    with serve(sigv4_fake(mode="no_list_permission")) as server:
        provider = iam_provider(server)
        LLMModelFactory(provider=provider, identifier=SONNET)
        result = provider_check_connection(provider=provider)
        with pytest.raises(LacksPermission) as error:
            provider.client().list_models()

    assert result == ("no_permission", NO_LIST_PERMISSION)
    assert str(error.value) == NO_LIST_PERMISSION
    provider.refresh_from_db()
    assert (provider.check_status, provider.check_reason) == ("no_permission", NO_LIST_PERMISSION)
    # The credentials are right: the models configured by hand stay available.
    assert provider.availability == "available"
    assert server.requests[0].headers[SIGNATURE_VERDICT] == "valid"


class NoInvokePermission(SigV4Fake):
    """Signed right, but the IAM policy doesn't allow streaming a model's answer."""

    def handle_post(self, handler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        self.check_signature(handler, {}, body)
        answer = json.dumps(
            {
                "message": "User: arn:aws:iam::123456789012:user/llm is not authorized to "
                "perform: bedrock:InvokeModelWithResponseStream"
            }
        ).encode()
        handler.send_response(403)
        handler.send_header("x-amzn-ErrorType", "AccessDeniedException:http://internal.amazon.com/")
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        handler.wfile.write(answer)


def test_a_model_the_credentials_may_not_call_is_logged_and_unavailable_to_the_user(
    client, developer, caplog
):
    with serve(NoInvokePermission("bedrock", UNUSED_API_KEY)) as server:
        events = send(client, LLMModelFactory(provider=iam_provider(server), identifier=SONNET))

    assert NO_CHAT_PERMISSION in caplog.text
    assert events[1:] == [("error", {"message": UNAVAILABLE, "stop_reason": "failed"})]
    # No answer came: the stored turn has no text, only why it failed.
    answer = Message.objects.get(role="assistant")
    assert (answer.content, answer.error, answer.stop_reason) == ("", UNAVAILABLE, "failed")


# --- 5. The admin ------------------------------------------------------------------------------


def change_url(provider: Provider) -> str:
    return reverse("admin:llmadmin_provider_change", args=[provider.pk])


def raw_secrets(provider: Provider) -> tuple[str | None, str | None]:
    """The columns as stored: ciphertext, or NULL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT aws_secret_access_key, aws_session_token FROM llmadmin_provider WHERE id = %s",
            [provider.pk],
        )
        return cursor.fetchone()


def bedrock_without_credentials() -> Provider:
    return ProviderFactory(bedrock=True, api_key=None)


IAM_FORM = {
    "auth": "aws_keys",
    "aws_access_key_id": ACCESS_KEY_ID,
    "aws_secret_access_key": SECRET,
    "aws_session_token": TOKEN,
    "region": REGION,
}


def test_iam_access_keys_are_stored_encrypted_and_never_shown(admin_client):
    provider = bedrock_without_credentials()

    response = admin_client.post(change_url(provider), provider_form_data(provider, **IAM_FORM))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.auth, provider.aws_access_key_id, provider.region) == (
        "aws_keys",
        ACCESS_KEY_ID,
        REGION,
    )
    assert (provider.aws_secret_access_key, provider.aws_session_token) == (SECRET, TOKEN)
    assert (provider.key_state, provider.availability) == ("set", "available")
    secret_column, token_column = raw_secrets(provider)
    assert secret_column and SECRET not in secret_column
    assert token_column and TOKEN not in token_column
    page = admin_client.get(change_url(provider)).text
    assert SECRET not in page
    assert TOKEN not in page
    assert "Key set (not tested)" in page
    history = admin_client.get(reverse("admin:llmadmin_provider_history", args=[provider.pk]))
    assert SECRET not in history.text
    assert TOKEN not in history.text


def test_a_blank_secret_keeps_the_stored_one(admin_client):
    provider = bedrock_without_credentials()
    admin_client.post(change_url(provider), provider_form_data(provider, **IAM_FORM))
    provider.refresh_from_db()

    response = admin_client.post(change_url(provider), provider_form_data(provider, enabled=""))

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.enabled, provider.aws_secret_access_key, provider.aws_session_token) == (
        False,
        SECRET,
        TOKEN,
    )


def test_removing_the_stored_credentials_removes_the_iam_keys(admin_client):
    provider = bedrock_without_credentials()
    admin_client.post(change_url(provider), provider_form_data(provider, **IAM_FORM))
    provider.refresh_from_db()

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, remove_api_key="on")
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    # Nothing is left to sign with, so the provider goes back to its first way, a key.
    assert (provider.auth, provider.aws_access_key_id, raw_secrets(provider)) == (
        "api_key",
        "",
        (None, None),
    )
    assert (provider.key_state, provider.availability) == ("missing", "missing_key")


# fmt: off
INVALID_FORMS = [  # (posted fields over IAM_FORM, the form's exact errors)
    pytest.param({"aws_secret_access_key": ""},
                 {"aws_secret_access_key": ["Enter the secret access key."]}, id="no secret"),
    pytest.param({"aws_access_key_id": ""},
                 {"aws_access_key_id": ["Enter the access key ID of the IAM access key."]},
                 id="no access key id"),
    pytest.param({"aws_access_key_id": "akia-not-an-id"},
                 {"aws_access_key_id": ["Enter an access key ID such as AKIA…."]},
                 id="an access key id AWS never issues"),
    pytest.param({"aws_secret_access_key": f" {SECRET}"},
                 {"aws_secret_access_key": [
                     "The key starts or ends with a space or line break: paste the key alone."]},
                 id="a secret pasted with a space"),
    pytest.param({"region": ""}, {"region": ["AWS Bedrock needs a region, such as us-east-1."]},
                 id="no region"),
    pytest.param({"auth": "default_chain", "region": ""},
                 {"region": ["AWS Bedrock needs a region, such as us-east-1."]},
                 id="the server's credentials without a region"),
]
# fmt: on


@pytest.mark.parametrize(("posted", "errors"), INVALID_FORMS)
def test_incomplete_iam_credentials_are_field_errors_and_nothing_is_saved(
    admin_client, posted, errors
):
    provider = bedrock_without_credentials()
    before = Provider.objects.filter(pk=provider.pk).values().get()

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, **{**IAM_FORM, **posted})
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors
    assert Provider.objects.filter(pk=provider.pk).values().get() == before
    assert SECRET not in response.text
    assert TOKEN not in response.text


def test_the_servers_credentials_are_chosen_without_a_secret(admin_client):
    provider = bedrock_without_credentials()

    response = admin_client.post(
        change_url(provider), provider_form_data(provider, auth="default_chain", region=REGION)
    )

    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.auth, provider.key_state, provider.availability) == (
        "default_chain",
        "server",
        "available",
    )
    assert raw_secrets(provider) == (None, None)
    page = admin_client.get(change_url(provider)).text
    assert "The server&#x27;s AWS credentials (not tested)" in page


def test_bedrock_offers_its_three_ways_to_authenticate(admin_client):
    form = admin_client.get(change_url(bedrock_without_credentials())).context["adminform"].form

    assert list(form.fields["auth"].choices) == [
        ("api_key", "Bedrock API key"),
        ("aws_keys", "IAM access key"),
        ("default_chain", "The server's AWS credentials"),
    ]


def test_another_type_cannot_choose_iam_access_keys(admin_client):
    provider = ProviderFactory(anthropic=True, api_key="sk-ant-KEEP-1")

    page = admin_client.get(change_url(provider))
    response = admin_client.post(change_url(provider), provider_form_data(provider, **IAM_FORM))
    # The admin's form for the type, outside its fieldsets: the choices are the type's modes.
    form = ProviderAdminForm(data=provider_form_data(provider, **IAM_FORM), instance=provider)

    # The admin shows no way to choose, and ignores a posted choice.
    assert [name for name in page.context["adminform"].form.fields if "auth" in name] == []
    assert 'name="aws_secret_access_key"' not in page.text
    assert response.status_code == 302
    provider.refresh_from_db()
    assert (provider.auth, provider.aws_access_key_id, provider.aws_secret_access_key) == (
        "api_key",
        "",
        None,
    )
    assert provider.api_key == "sk-ant-KEEP-1"
    assert form.errors["auth"] == [
        "Select a valid choice. aws_keys is not one of the available choices."
    ]


# --- 6. Rotation and configuration files -----------------------------------------------------


# fmt: off
ROTATIONS = [  # (before, during the rotation, after the old one is removed)
    pytest.param({"secret_key": "old-secret"},
                 {"secret_key": "new-secret", "fallbacks": ("old-secret",)},
                 {"secret_key": "new-secret"}, id="a new secret key"),
    pytest.param({"secret_key": "secret", "salts": ("old-salt",)},
                 {"secret_key": "secret", "salts": ("new-salt", "old-salt")},
                 {"secret_key": "secret", "salts": ("new-salt",)}, id="a new salt"),
]
# fmt: on


@pytest.mark.parametrize(("before", "during", "after"), ROTATIONS)
def test_rotation_reencrypts_the_secret_and_session_token(
    encryption_secrets, before, during, after
):
    encryption_secrets(**before)
    with serve(sigv4_fake(TOKEN)) as server:
        provider = iam_provider(server, aws_session_token=TOKEN)
        stored = raw_secrets(provider)

        encryption_secrets(**during)
        out, err = io.StringIO(), io.StringIO()
        call_command("rotate_keys", stdout=out, stderr=err)
        encryption_secrets(**after)  # the old one is gone

        provider = Provider.objects.get(pk=provider.pk)
        result = provider_check_connection(provider=provider)

    assert (out.getvalue(), err.getvalue()) == ("Re-encrypted 1 API keys.\n", "")
    assert all(new != old for new, old in zip(raw_secrets(provider), stored, strict=True))
    assert (provider.aws_secret_access_key, provider.aws_session_token) == (SECRET, TOKEN)
    assert (provider.key_state, provider.availability) == ("set", "available")
    assert result == ("verified", VERIFIED)


def test_without_rotation_removing_the_old_secret_makes_iam_keys_unreadable(
    encryption_secrets,
):
    encryption_secrets(secret_key="old-secret")
    provider = ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
    )

    encryption_secrets(secret_key="new-secret")

    provider = Provider.objects.get(pk=provider.pk)
    assert (provider.key_state, provider.availability) == ("unreadable", "key_unreadable")
    assert provider.credentials() == {}


def test_the_export_never_holds_iam_credentials():
    ProviderFactory(
        bedrock=True,
        api_key=None,
        auth="aws_keys",
        region=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET,
        aws_session_token=TOKEN,
    )
    out = io.StringIO()

    call_command("export_config", "--format", "json", stdout=out)

    for credential in (ACCESS_KEY_ID, SECRET, TOKEN):
        assert credential not in out.getvalue()
    (entry,) = [p for p in json.loads(out.getvalue())["providers"] if p["type"] == "bedrock"]
    assert entry == {
        "name": "AWS Bedrock",
        "type": "bedrock",
        "slug": "bedrock",
        "enabled": True,
        "base_url": "",
        "region": REGION,
        "auth": "aws_keys",
        "models": [],
    }


NEVER_IMPORTED = (
    "providers[0].{}: credentials are never imported; set them in the admin (API keys also "
    "with manage.py set_provider_key)."
)


@pytest.mark.parametrize(
    "name", ["aws_secret_access_key", "aws_session_token", "aws_access_key_id", "api_key"]
)
def test_an_import_refuses_credentials(name):
    entry = {"type": "bedrock", "region": REGION, "auth": "aws_keys", name: "AKIAFROMAFILE00000"}

    with pytest.raises(ConfigurationError) as error:
        import_configuration({"version": 1, "providers": [entry]}, dry_run=False)

    assert error.value.errors[0] == NEVER_IMPORTED.format(name)
    assert Provider.objects.get(type="bedrock").auth == "api_key"


# fmt: off
IMPORTED_AUTH = [  # (provider entry, the changes or the exact errors)
    pytest.param({"type": "bedrock", "region": REGION, "auth": "default_chain"},
                 ["update provider bedrock: region 'us-east-1' -> 'eu-west-1', "
                  "auth 'api_key' -> 'default_chain'"],
                 id="the server's credentials"),
    pytest.param({"type": "bedrock", "region": REGION, "auth": "aws_keys"},
                 ["providers[0] (bedrock).aws_access_key_id: Enter the access key ID of the IAM "
                  "access key.",
                  "providers[0] (bedrock).aws_secret_access_key: Enter the secret access key."],
                 id="IAM access keys not set yet"),
    pytest.param({"type": "anthropic", "auth": "aws_keys"},
                 ["providers[0] (anthropic).auth: Anthropic authenticates with an API key."],
                 id="IAM access keys for another type"),
]
# fmt: on


@pytest.mark.parametrize(("entry", "outcome"), IMPORTED_AUTH)
def test_an_import_chooses_how_bedrock_authenticates(entry, outcome):
    ProviderFactory(bedrock=True, api_key=None)
    data = {"version": 1, "providers": [entry]}

    try:
        changes = import_configuration(data, dry_run=False)
    except ConfigurationError as error:
        changes = error.errors

    assert changes == outcome


# --- 7. What the review of this change found ---------------------------------------------------


def test_a_new_access_key_drops_the_old_keys_session_token(admin_client):
    provider = bedrock_without_credentials()
    admin_client.post(change_url(provider), provider_form_data(provider, **IAM_FORM))
    provider.refresh_from_db()
    assert provider.aws_session_token == TOKEN

    admin_client.post(
        change_url(provider),
        provider_form_data(
            provider,
            aws_access_key_id="AKIAIOSFODNN7OTHERKEY",
            aws_secret_access_key="another/long-term/secret",
        ),
    )

    provider.refresh_from_db()
    assert provider.aws_session_token is None
    assert provider.credentials()["aws_session_token"] == ""


def test_a_kept_secret_is_forgotten_once_the_page_is_left(admin_client):
    provider = bedrock_without_credentials()
    typed = provider_form_data(provider, **{**IAM_FORM, "region": ""})
    admin_client.post(change_url(provider), typed)  # refused: no region

    admin_client.get(change_url(provider))  # the admin comes back later
    response = admin_client.post(
        change_url(provider),
        provider_form_data(provider, **{**IAM_FORM, "aws_secret_access_key": ""}),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "aws_secret_access_key": ["Enter the secret access key."]
    }


def test_a_kept_secret_that_is_used_counts_as_a_change(admin_client):
    provider = bedrock_without_credentials()
    provider.check_status = "verified"
    provider.save()
    admin_client.post(
        change_url(provider), provider_form_data(provider, **{**IAM_FORM, "region": ""})
    )

    admin_client.post(
        change_url(provider),
        provider_form_data(provider, **{**IAM_FORM, "aws_secret_access_key": ""}),
    )

    provider.refresh_from_db()
    assert provider.aws_secret_access_key == SECRET
    assert provider.check_status == ""  # the last test was of other credentials
    history = LogEntry.objects.filter(object_id=str(provider.pk)).latest("action_time")
    assert "AWS secret access key" in history.get_change_message()


def test_an_unreadable_token_of_the_chosen_way_makes_the_provider_unavailable(
    encryption_secrets,
):
    encryption_secrets("old-secret")
    provider = ProviderFactory(bedrock=True, region=REGION, aws_session_token=TOKEN)
    encryption_secrets("new-secret")
    provider = Provider.objects.get(pk=provider.pk)  # key readable now; the token is not

    provider.api_key = "sk-a-readable-key"
    provider.auth = "aws_keys"
    provider.aws_access_key_id = ACCESS_KEY_ID
    provider.aws_secret_access_key = SECRET
    provider.save()

    assert (provider.key_state, provider.availability) == ("unreadable", "key_unreadable")


def test_rotation_reencrypts_what_it_can_read_even_beside_an_unreadable_secret(
    encryption_secrets,
):
    encryption_secrets("old-secret")
    provider = ProviderFactory(bedrock=True, region=REGION, api_key="sk-lost-with-its-secret")
    encryption_secrets("other-secret")
    Provider.objects.filter(pk=provider.pk).update(auth="aws_keys")
    provider = Provider.objects.get(pk=provider.pk)
    provider.aws_access_key_id, provider.aws_secret_access_key = ACCESS_KEY_ID, SECRET
    provider.save()
    encryption_secrets("newest-secret", fallbacks=("other-secret",))

    with pytest.raises(SystemExit):  # it reports the key it can't read, and exits 1
        call_command("rotate_keys", stdout=io.StringIO(), stderr=io.StringIO())
    encryption_secrets("newest-secret")

    provider = Provider.objects.get(pk=provider.pk)
    assert provider.aws_secret_access_key == SECRET
    assert (provider.key_state, provider.availability) == ("set", "available")


def test_an_import_without_auth_keeps_the_way_and_a_new_way_voids_the_last_test():
    provider = ProviderFactory(bedrock=True, region=REGION, api_key=None)
    provider.auth, provider.aws_access_key_id, provider.aws_secret_access_key = (
        "aws_keys",
        ACCESS_KEY_ID,
        SECRET,
    )
    provider.check_status = "verified"
    provider.save()
    entry = {"type": "bedrock", "region": REGION}

    import_configuration({"version": 1, "providers": [entry]}, dry_run=False)
    kept = Provider.objects.get(pk=provider.pk)
    import_configuration(
        {"version": 1, "providers": [{**entry, "auth": "default_chain"}]}, dry_run=False
    )
    switched = Provider.objects.get(pk=provider.pk)

    # A file from before "auth" existed leaves the IAM keys in use, and their test result.
    assert (kept.auth, kept.check_status) == ("aws_keys", "verified")
    assert (switched.auth, switched.check_status) == ("default_chain", "")
