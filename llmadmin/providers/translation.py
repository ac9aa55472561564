"""How a gateway request reaches its model: as the client sent it where the model's family
speaks the client's API, else translated through the neutral Conversation (contract.py) by
the client's API (CLIENT_APIS) and the model's family (ProviderClient.converse)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from llmadmin.providers import anthropic, openai
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import ClientApi, Relay, RelayApi, StreamEvent
from llmadmin.providers.errors import RequestRefused
from llmadmin.providers.transport import ProviderClient

# The gateway APIs a request of which any model's family can be given, translated. OpenAI's
# Responses and Anthropic's count_tokens reach their own families' models only.
CLIENT_APIS: dict[RelayApi, ClientApi] = {
    RelayApi.CHAT_COMPLETIONS: openai.CHAT_COMPLETIONS_API,
    RelayApi.MESSAGES: anthropic.MESSAGES_API,
}


def relay_events(
    client: ProviderClient, model: ModelSettings, request: Relay
) -> AsyncIterator[StreamEvent]:
    """The events of a gateway call (ProviderClient.relay_call): relayed, or translated."""
    if client.speaks(request.api, model.identifier):
        return client.relay_call(model, request)
    translation = CLIENT_APIS.get(request.api)
    if translation is None:
        raise RequestRefused("This model is not served through this API.")
    return client.relay_call(model, request, translation=translation)
