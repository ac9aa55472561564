"""What Bedrock's tests share: botocore reads nothing of this machine's AWS setup, and sends the
fakes' key as its bearer token."""

from __future__ import annotations

import os

import pytest

from tests.providers.bedrock.fake import KEY


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("AWS_", "ANTHROPIC_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", KEY)
