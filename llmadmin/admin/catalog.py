"""What the catalog (models.dev) says about a model, as the model page shows it."""

from __future__ import annotations

from decimal import Decimal

from llmadmin.providers.catalog import ModelFacts, Prices


def catalog_lines(facts: ModelFacts) -> list[tuple[str, str]]:
    """(label, value) of what the catalog says about a model, for the model page."""

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else "yes" if value else "no"

    def usd(value: Decimal | None) -> str:
        return "unpriced" if value is None else f"${format(value.normalize(), 'f')}"

    def listed(prices: Prices) -> str:
        return (
            f"input {usd(prices.input)}, output {usd(prices.output)}, cache read "
            f"{usd(prices.cache_read)}, cache write {usd(prices.cache_write)}"
        )

    lines = [
        ("Name", facts.name),
        ("Context limit", f"{facts.context_limit or 'unknown'} tokens"),
        ("Max output", f"{facts.output_limit or 'unknown'} tokens"),
        ("Reasoning", yes_no(facts.reasoning)),
        ("Takes a temperature", yes_no(facts.temperature)),
        ("Tool calls", yes_no(facts.tool_call)),
        ("Input", ", ".join(facts.input_modalities) or "unknown"),
        ("Knowledge", facts.knowledge or "unknown"),
        ("Released", facts.release_date or "unknown"),
        ("Prices per 1M tokens", listed(facts.prices)),
    ]
    if any(value is not None for value in facts.long_context_prices.as_tuple()):
        lines.append(("Long-context prices per 1M tokens", listed(facts.long_context_prices)))
    if facts.deprecated:
        lines.append(("Status", "deprecated"))
    return lines
