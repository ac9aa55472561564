"""Limits per developer: turns at once (chat turns and gateway calls together), requests per
minute, tokens per minute. Budgets bound a month's spend; these bound its pace, and with it
what concurrent turns can overspend a budget by (see the README).

Each limit on its own: the developer's override, where it sets one; else the highest among
their groups that set one; else none.

A turn let through under a limit holds a lease (TurnLease): one of the developer's turns at
once while live, one of their requests for 60 seconds from its start. Each of its calls'
tokens count for 60 seconds from when the call was recorded (CallTokens). The turn renews its
lease while it runs and ends it however it ends; a worker killed mid-turn stops renewing, and
its lease expires after TURN_LEASE_SECONDS: the slot is free again. A count of tokens (the
Anthropic gateway's count_tokens) is a request too, but no turn.

Admission is one transaction holding the developer's row locked (PostgreSQL: SELECT … FOR
UPDATE; SQLite: the write lock, taken at BEGIN IMMEDIATE): concurrent admissions of one
developer, in any process on any machine sharing the database, count each other. Their budget
is read again under that lock: a turn that waited for it may have read the budget before
other turns ended and committed their costs; now every cost not yet committed is a live
lease's, and a concurrency limit of C bounds the overspend to C turns (billing.budgets). A
developer no limit applies to takes no lease: their limits are read with their budget, in its
query.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import LIMIT_FIELDS, CallTokens, TurnLease

WINDOW = timedelta(seconds=60)
# A turn let through holds its slot this long (at most its lease's length) before it starts
# (its answer's stream holds it from then on): one whose client left before it started (a chat
# turn's view never answers such a client) frees its slot after this.
START_SECONDS = timedelta(seconds=10)
STALE_LEASE = timedelta(days=1)
# A client refused for turns at once can't be told when one ends: asked to try again soon.
CONCURRENT_RETRY_SECONDS = 5


# Each limit by name, as pages show it.
LIMIT_LABELS = {
    "concurrent_turns": "Turns at once",
    "requests_per_minute": "Requests per minute",
    "tokens_per_minute": "Tokens per minute",
}


@dataclass(frozen=True)
class Limits:
    """A developer's limits; None: no limit."""

    concurrent_turns: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    # The group each limit that comes from a group comes from, by name; the other limits set
    # are the developer's own. Not compared: the same limits are the same wherever they come
    # from.
    groups: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def any(self) -> bool:
        return any(getattr(self, name) is not None for name in LIMIT_FIELDS)

    def source(self, name: str) -> str | None:
        """Where this limit comes from: "override" (their own), "group", or None (not set)."""
        if getattr(self, name) is None:
            return None
        return "group" if name in self.groups else "override"

    def text(self, name: str) -> str:
        """The limit as pages show it: "Tokens per minute: 100,000", or "…: no limit"."""
        value = getattr(self, name)
        return f"{LIMIT_LABELS[name]}: {'no limit' if value is None else f'{value:,}'}"

    def summary(self) -> dict[str, dict[str, Any]]:
        """As the API gives them: each limit's value, source, group (its name, or None) and
        text."""
        return {
            name: {
                "value": getattr(self, name),
                "source": self.source(name),
                "group": self.groups.get(name),
                "text": self.text(name),
            }
            for name in LIMIT_FIELDS
        }


class LimitReached(Exception):
    """A turn refused under the developer's limits, before anything was stored or sent."""

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        # In words for the developer, and in whole seconds (Retry-After).
        self.detail = detail
        self.retry_after = retry_after


def limits_from(rows: list[tuple[str, int, str | None]]) -> Limits:
    """The rule, from the limits set for a developer as (kind, value, group name): kinds
    "group <limit>" (one row per group that sets it, with its name) and "own <limit>" (their
    override sets it)."""
    values, groups = {}, {}
    for name in LIMIT_FIELDS:
        own = [value for kind, value, _ in rows if kind == f"own {name}"]
        by_groups = [(value, group) for kind, value, group in rows if kind == f"group {name}"]
        if own:
            values[name] = own[0]
        elif by_groups:
            # The highest wins; between equal ones, the first group by name (as budgets).
            values[name], groups[name] = min(by_groups, key=lambda row: (-row[0], row[1]))
    return Limits(**values, groups=groups)


def turn_lease(user_id: int, limits: Limits, *, budget_check: Callable[[], None]) -> int | None:
    """Let one more turn of this developer through under their limits (as read with their
    budget): its lease's id, None when no limit applies to them; raises LimitReached, or what
    `budget_check` (their budget read again, under their lock) raises. The lease holds for
    START_SECONDS, until the turn holds it (chat.metered Admission.held)."""
    if not limits.any:
        return None
    return lease_take(user_id, limits, budget_check=budget_check, turn=True)


def request_count(user_id: int, limits: Limits) -> None:
    """Let a request that is no turn (a count of tokens: the provider is called, nothing is
    billed) through under this developer's requests per minute; raises LimitReached."""
    if limits.requests_per_minute is not None:
        lease_take(user_id, limits, budget_check=lambda: None, turn=False)


def lease_take(
    user_id: int, limits: Limits, *, budget_check: Callable[[], None], turn: bool
) -> int:
    with transaction.atomic():
        # Every admission of this developer waits here for the one before it to commit.
        list(get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk"))
        # Its time once it holds the lock: no lease it reads started later, and the leases
        # start in the order they were let through.
        now = timezone.now()
        budget_check()
        leases = TurnLease.objects.filter(user=user_id)
        tokens = CallTokens.objects.filter(user=user_id)
        # What counts for nothing any more goes: requests over and out of the minute, calls'
        # tokens out of it. A lease that expired unended is kept a day: its turn may still run
        # (its renewals failed while the database was down) and renew it.
        leases.filter(
            Q(ended_at__isnull=False) | Q(expires_at__lte=now - STALE_LEASE),
            started_at__lte=now - WINDOW,
        ).delete()
        tokens.filter(recorded_at__lte=now - WINDOW).delete()
        refusal_raise(
            limits,
            list(leases.values_list("started_at", "expires_at", "ended_at")),
            list(tokens.values_list("recorded_at", "tokens")) if turn else [],
            now,
            turn=turn,
        )
        lease = TurnLease.objects.create(
            user_id=user_id,
            started_at=now,
            expires_at=now + min(START_SECONDS, lease_length()) if turn else now,
            ended_at=None if turn else now,
        )
    return lease.pk


def refusal_raise(
    limits: Limits,
    leases: list[tuple[datetime, datetime, datetime | None]],
    used: list[tuple[datetime, int]],
    now: datetime,
    *,
    turn: bool,
) -> None:
    """LimitReached when one more request now (`turn`: a turn) would pass a limit, given the
    developer's leases (started, expires, ended) and their calls' tokens (recorded, tokens)."""
    since = now - WINDOW
    live = [lease for lease in leases if lease[2] is None and lease[1] > now]
    if turn and limits.concurrent_turns is not None and len(live) >= limits.concurrent_turns:
        raise LimitReached(
            f"You have reached your limit of {counted(limits.concurrent_turns, 'turn')} at "
            "once: try again when one ends.",
            CONCURRENT_RETRY_SECONDS,
        )
    starts = sorted(lease[0] for lease in leases if lease[0] > since)
    if limits.requests_per_minute is not None and len(starts) >= limits.requests_per_minute:
        # Free again when enough of them are a minute old.
        frees_at = starts[len(starts) - limits.requests_per_minute] + WINDOW
        raise LimitReached(
            f"You have reached your limit of {counted(limits.requests_per_minute, 'request')} "
            f"per minute: {retry_text(frees_at, now)}",
            seconds_until(frees_at, now),
        )
    used = sorted(call for call in used if call[0] > since)
    total = sum(tokens for _, tokens in used)
    if limits.tokens_per_minute is not None and total >= limits.tokens_per_minute:
        # Free again once what is left of the minute's tokens is below the limit: the oldest
        # go first.
        left, frees_at = total, now
        for recorded_at, tokens in used:
            left, frees_at = left - tokens, recorded_at + WINDOW
            if left < limits.tokens_per_minute:
                break
        raise LimitReached(
            f"You have reached your limit of {counted(limits.tokens_per_minute, 'token')} per "
            f"minute ({total:,} in the last minute): {retry_text(frees_at, now)}",
            seconds_until(frees_at, now),
        )


def counted(number: int, noun: str) -> str:
    """ "1 turn", "2 turns", "100,000 tokens"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from now to the moment, 1 to 60: a moment recorded by a server whose clock
    runs ahead lies a little past the window (the SDKs ignore a Retry-After over 60)."""
    seconds = math.ceil((moment - now).total_seconds())
    return min(max(1, seconds), int(WINDOW.total_seconds()))


def retry_text(moment: datetime, now: datetime) -> str:
    return f"try again in {counted(seconds_until(moment, now), 'second')}."


def lease_length() -> timedelta:
    return timedelta(seconds=settings.TURN_LEASE_SECONDS)


def lease_start(lease_id: int) -> None:
    """The turn starts: its lease holds for TURN_LEASE_SECONDS from now; LimitReached when
    its start window passed first (its slot may be another turn's by now)."""
    now = timezone.now()
    started = TurnLease.objects.filter(pk=lease_id, ended_at__isnull=True, expires_at__gt=now)
    if not started.update(expires_at=now + lease_length()):
        raise LimitReached(
            "Your turn took too long to start and its slot went to another: try again.",
            CONCURRENT_RETRY_SECONDS,
        )


def lease_renew(lease_id: int) -> None:
    """The turn still runs: its lease holds for another TURN_LEASE_SECONDS."""
    TurnLease.objects.filter(pk=lease_id, ended_at__isnull=True).update(
        expires_at=timezone.now() + lease_length()
    )


def lease_end(lease_id: int) -> None:
    """The turn is over, however it ended: one slot free."""
    TurnLease.objects.filter(pk=lease_id, ended_at__isnull=True).update(ended_at=timezone.now())


def call_tokens(user_id: int, tokens: int) -> None:
    """A call of a turn under limits recorded this many tokens: they count for a minute."""
    CallTokens.objects.create(user_id=user_id, tokens=tokens, recorded_at=timezone.now())
