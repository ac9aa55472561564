"""HTTP clients of the provider APIs: verify a key and list models, with requests.

Each provider type names its client in the registry. Keys travel only in the auth header, to
the configured host: never in a URL, never logged, never sent on to another host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

if TYPE_CHECKING:
    from llmadmin.models import Provider

CheckStatus = Literal["verified", "rejected", "unreachable"]
MAX_REDIRECTS = 3
MAX_PAGES = 20


class ProviderError(Exception):
    """A call that did not succeed; the message is for the administrator and has no key."""

    status: CheckStatus = "unreachable"


class KeyRejected(ProviderError):
    status: CheckStatus = "rejected"


class Unreachable(ProviderError):
    pass


@dataclass(frozen=True)
class RemoteModel:
    identifier: str
    context_limit: int | None = None


class ProviderClient:
    """OpenAI-style API: Bearer auth, GET {base}/models answering {"data": [{"id": ...}]}."""

    @sensitive_variables("api_key")
    def __init__(self, provider: Provider) -> None:
        api_key = provider.usable_api_key
        if api_key is None:
            raise ProviderError("No readable API key is set.")
        self.provider = provider
        self.api_key = api_key
        self.base_url = provider.effective_base_url

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def verify(self) -> None:
        """The cheapest authenticated call that costs nothing; raises ProviderError."""
        self.get_json(f"{self.base_url}/models")

    def list_models(self) -> list[RemoteModel]:
        return [
            RemoteModel(item["id"], item.get("context_length") or item.get("max_model_len"))
            for item in self.items(self.get_json(f"{self.base_url}/models"), "data")
        ]

    def items(self, payload: Any, key: str) -> list[dict[str, Any]]:
        items = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get(self.id_field(key)), str)
            for item in items
        ):
            raise Unreachable(f"{self.host} answered with an unexpected model list.")
        return items

    def id_field(self, list_key: str) -> str:
        return "id"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    def get_json(self, url: str, params: dict[str, Any] | None = None) -> Any:
        """GET with the auth header, following redirects only within the same host."""
        timeout = (settings.PROVIDER_CONNECT_TIMEOUT, settings.PROVIDER_READ_TIMEOUT)
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            host = urlsplit(url).netloc
            try:
                response = requests.get(
                    url,
                    params=params,
                    headers={**self.auth_headers(), "Accept": "application/json"},
                    timeout=timeout,
                    allow_redirects=False,
                )
            except requests.Timeout:
                raise Unreachable(
                    f"Could not reach {host}: timed out after {settings.PROVIDER_READ_TIMEOUT:g} s."
                ) from None
            except requests.RequestException as error:
                raise Unreachable(f"Could not reach {host}: {describe(error)}.") from None
            if not response.is_redirect:
                break
            target = urljoin(url, response.headers["Location"])
            if urlsplit(target)[:2] != origin:
                raise Unreachable(
                    f"{host} redirected to {urlsplit(target).netloc}; the key was not sent there."
                )
            url, params = target, None
        else:
            raise Unreachable(f"{host} redirected too many times.")

        if self.is_rejected(response):
            raise KeyRejected(f"The provider rejected the API key ({response.status_code}).")
        if response.status_code >= 400:
            raise Unreachable(
                f"{host} answered {response.status_code} to GET {urlsplit(url).path}."
            )
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"{host} answered with something that is not JSON.") from None

    def is_rejected(self, response: requests.Response) -> bool:
        return response.status_code in (401, 403)


def describe(error: requests.RequestException) -> str:
    """A short, key-free description of a connection failure."""
    if isinstance(error, requests.ConnectionError):
        return "connection refused or host not found"
    return type(error).__name__


class AnthropicClient(ProviderClient):
    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key, "anthropic-version": "2023-06-01"}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/v1/models", {"limit": 1})

    def list_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"limit": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/v1/models", params)
            models += [
                RemoteModel(item["id"], item.get("max_input_tokens"))
                for item in self.items(payload, "data")
            ]
            if not payload.get("has_more") or not payload.get("last_id"):
                break
            params = {"limit": 1000, "after_id": payload["last_id"]}
        return models


class GoogleClient(ProviderClient):
    def is_rejected(self, response: requests.Response) -> bool:
        # Gemini answers a bad key with 400 and the reason API_KEY_INVALID.
        return super().is_rejected(response) or (
            response.status_code == 400 and "API_KEY_INVALID" in response.text
        )

    def auth_headers(self) -> dict[str, str]:
        # The header form, never ?key=: URLs end up in logs.
        return {"x-goog-api-key": self.api_key}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/v1beta/models", {"pageSize": 1})

    def id_field(self, list_key: str) -> str:
        return "name"

    def list_models(self) -> list[RemoteModel]:
        models: list[RemoteModel] = []
        params: dict[str, Any] = {"pageSize": 1000}
        for _ in range(MAX_PAGES):
            payload = self.get_json(f"{self.base_url}/v1beta/models", params)
            models += [
                RemoteModel(item["name"].removeprefix("models/"), item.get("inputTokenLimit"))
                for item in self.items(payload, "models")
                if "generateContent" in item.get("supportedGenerationMethods", [])
            ]
            if not payload.get("nextPageToken"):
                break
            params = {"pageSize": 1000, "pageToken": payload["nextPageToken"]}
        return models


class AzureClient(ProviderClient):
    """Azure OpenAI's v1 API: the models the resource can use (deployments are ARM-only)."""

    def auth_headers(self) -> dict[str, str]:
        return {"api-key": self.api_key}

    def verify(self) -> None:
        self.get_json(f"{self.base_url}/openai/v1/models")

    def list_models(self) -> list[RemoteModel]:
        payload = self.get_json(f"{self.base_url}/openai/v1/models")
        return [RemoteModel(item["id"]) for item in self.items(payload, "data")]


class BedrockClient(ProviderClient):
    """Bedrock API keys as Bearer tokens, on the control-plane host of the region."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(provider)
        # The runtime host serves chat; models are listed by the control plane, unless the
        # admin points both at a proxy.
        self.control_url = (
            self.base_url
            if provider.base_url
            else f"https://bedrock.{provider.region}.amazonaws.com"
        )

    @property
    def host(self) -> str:
        return urlsplit(self.control_url).netloc

    def verify(self) -> None:
        self.get_json(f"{self.control_url}/foundation-models")

    def id_field(self, list_key: str) -> str:
        return {"modelSummaries": "modelId"}.get(list_key, "inferenceProfileId")

    def list_models(self) -> list[RemoteModel]:
        foundation = self.get_json(f"{self.control_url}/foundation-models")
        profiles = self.get_json(f"{self.control_url}/inference-profiles")
        return [
            RemoteModel(item["modelId"]) for item in self.items(foundation, "modelSummaries")
        ] + [
            RemoteModel(item["inferenceProfileId"])
            for item in self.items(profiles, "inferenceProfileSummaries")
        ]


class OpenRouterClient(ProviderClient):
    def verify(self) -> None:
        # The model list may answer without checking the key; /key always checks it.
        self.get_json(f"{self.base_url}/key")


class VercelClient(ProviderClient):
    def verify(self) -> None:
        # The model list seems public; the credits balance needs a valid key.
        self.get_json(f"{self.base_url}/credits")

    def list_models(self) -> list[RemoteModel]:
        return [
            RemoteModel(item["id"], item.get("context_window"))
            for item in self.items(self.get_json(f"{self.base_url}/models"), "data")
        ]
