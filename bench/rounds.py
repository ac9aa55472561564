"""What every benchmark reports the same way: the machine's load, and each figure as min /
median / max over interleaved rounds (never a single best round: on a shared machine the best
round is luck). A ratio is taken per round, between figures measured in that round, and then
summarised like any other figure."""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Callable, Sequence


def load_line(when: str) -> str:
    """'load average at start: 0.41 0.52 0.60 (1, 5, 15 min) on 2 CPUs'."""
    one, five, fifteen = os.getloadavg()
    return (
        f"load average at {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) "
        f"on {os.cpu_count()} CPUs"
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] if ordered else math.nan


def spread(values: Sequence[float], text: Callable[[float], str] = "{:.1f}".format) -> str:
    """'median (min-max)' of one figure's rounds; a round without the figure (NaN: nothing
    to measure in it) is left out, and said."""
    measured = [value for value in values if not math.isnan(value)]
    missing = (
        f", {len(values) - len(measured)} of {len(values)} rounds without"
        if len(measured) < len(values)
        else ""
    )
    if not measured:
        return f"n/a{missing}"
    low, middle, high = min(measured), statistics.median(measured), max(measured)
    return f"{text(middle)} ({text(low)}-{text(high)}{missing})"


def ratios(measured: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Round by round: each round's figure over that round's reference."""
    return [a / b for a, b in zip(measured, reference, strict=True)]
