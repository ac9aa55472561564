"""Amounts of money as every page, API display string, mail and CSV shows them: one format.

USD only. Shown: `$1,234.56`, to four places under a cent (`$0.0042`), `-$1.50`. In a CSV:
plain numbers (no $, no thousands separators) beside a currency column. A cost is unknown
(unpriced model, or no token counts reported) rather than zero: shown as "unpriced", never
as $0.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

CURRENCY = "USD"
CENT = Decimal("0.01")
# The finest amount shown on a page (a CSV keeps every place the ledger has).
SHOWN_QUANTUM = Decimal("0.0001")
UNPRICED = "unpriced"


def usd(amount: Decimal, *, rounding: str = ROUND_HALF_UP) -> str:
    """$1,234.56, -$1.50, $0.00; under a cent to four places ($0.0042), and closer to zero
    than that "under $0.0001" (a cost, never shown as nothing)."""
    # Half up by default, as people round (and as the pages' floatformat did).
    shown = amount.quantize(CENT, rounding=rounding)
    if amount and not shown:
        shown = amount.quantize(SHOWN_QUANTUM, rounding=rounding)
        if not shown:
            return "under $0.0001" if amount > 0 else "above -$0.0001"
    return f"{'-' if shown < 0 else ''}${abs(shown):,}"


def usd_left(amount: Decimal) -> str:
    """What is left of a budget or cap: rounded down, so a page never promises more than
    there is ($9.9969 left is "$9.99", $0.0031 left "$0.0031", not "$10.00" or "$0.00")."""
    return usd(amount, rounding=ROUND_DOWN)


def limit_text(amount: Decimal | None) -> str:
    """An allowance or a cap as shown: "No limit" when none applies."""
    return "No limit" if amount is None else usd(amount)


def left_text(amount: Decimal | None) -> str:
    """What is left of an allowance or a cap as shown (rounded down): "No limit" when none
    applies."""
    return "No limit" if amount is None else usd_left(amount)


def cost_text(cost: Decimal, *, calls: int, unpriced_calls: int) -> str:
    """A sum of calls' costs: "unpriced" when none had a known cost, the known sum
    "+ N unpriced calls" when some had none, else the sum."""
    if unpriced_calls and unpriced_calls >= calls:
        return UNPRICED
    if unpriced_calls:
        return f"{usd(cost)} + {unpriced_calls:,} unpriced call{'' if unpriced_calls == 1 else 's'}"
    return usd(cost)


def csv_amount(amount: Decimal) -> str:
    """A plain number for a spreadsheet: exact, as the ledger keeps it, without trailing zeros
    beyond two places (13.50, 0.0042, 3.000075)."""
    whole, _, fraction = format(amount, "f").partition(".")
    return f"{whole}.{fraction.rstrip('0'):0<2}"
