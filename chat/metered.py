"""One metered call: every call of a model goes through here (a chat answer, its summary, and
the gateway's requests), so each is let through, bounded and billed the same way.

In order: the model resolved for this developer (their access), refused when their budget or
the model's cap is spent, or a limit of theirs is reached (turns at once, per minute), before
anything is stored or sent (`call_admit`, or its two steps `model_resolve` and `spend_admit`);
then the
provider's stream with its deadlines, its events handed to the caller as they come; and
however it ends (complete, a provider error, a deadline, the caller gone) the call in the
ledger with its cost, the caller's own row in the same transaction; budget alerts after commit.

    admission = call_admit(user=user, model_id=model_id)  # raises CallRefused, LimitReached
    async with admission.held():  # the turn: one of the developer's turns at once till it ends
        async with admission.call(chat=chat, store=my_row) as call:
            async for event in call:  # TextDelta, OtherOutput, Usage, Finish; ProviderError
                ...
    call.stored  # my_row's row, None when only the usage could be recorded

The gateway's calls are the same with `admission.relay(request=…)`: the client's request in
the provider's own API, whose events also hold the Raw bytes for the client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from django.conf import settings as django_settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.utils import timezone

from billing.budgets import Allowance, BudgetState, alerts_due, budget_state, spend_refusal
from billing.ledger import usage_record
from billing.limits import call_tokens, lease_end, lease_renew, lease_start, turn_lease
from billing.models import UsageRecord
from chat.model_list import offered_model, usable_models
from chat.retries import ALERT_THREADS, database, in_thread, release_connection, with_retries
from llmadmin.key_pools import (
    PoolKey,
    failover_log,
    key_cool,
    key_use_due,
    key_used,
    keys_to_try,
)
from llmadmin.models import LLMModel
from llmadmin.providers.base import ModelSettings
from llmadmin.providers.contract import (
    ChatInput,
    Finish,
    OtherOutput,
    Relay,
    StopReason,
    StreamEvent,
    TextDelta,
    Usage,
)
from llmadmin.providers.errors import ProviderError
from llmadmin.providers.translation import relay_events
from llmadmin.providers.transport import ProviderClient

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The budget alert checks queued on ALERT_THREADS and not yet started, by developer and month.
ALERTS_QUEUED: set[tuple[int, date]] = set()
ALERTS_QUEUED_LOCK = threading.Lock()


def alerts_soon(user_id: int, month: date) -> None:
    """Check this developer's budget alerts (billing.budgets.alerts_due) on ALERT_THREADS:
    whoever asks (a call's record as it commits, a refusal) never waits for the mail server,
    nor holds a request's thread, shared by every developer's requests, meanwhile. A check
    reads what was committed when it starts, so one queued and not yet started stands for
    every later request: during a mail outage the queue stays as long as the developers
    past a level, not as the calls they make."""
    due_for = (user_id, month)
    with ALERTS_QUEUED_LOCK:
        if due_for in ALERTS_QUEUED:
            return
        ALERTS_QUEUED.add(due_for)

    def check() -> None:
        with ALERTS_QUEUED_LOCK:
            ALERTS_QUEUED.discard(due_for)
        try:
            alerts_due(user_id, month)
        finally:
            release_connection()

    ALERT_THREADS.submit(check)


class CallRefused(Exception):
    """A call refused before anything was stored or sent."""


class ModelUnavailable(CallRefused):
    """No such model, or not one this developer may call now (disabled, no key, restricted):
    the two read the same."""


class BudgetSpent(CallRefused):
    """The developer's monthly budget, or their monthly cap for this model, is spent."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        # What is spent and when it resets, in words for the developer.
        self.detail = detail


def call_admit(*, user: AbstractBaseUser, model_id: int) -> Admission:
    """Let this developer call this model now, or raise CallRefused or LimitReached;
    DatabaseError when the database is down."""
    return spend_admit(user=user, resolution=model_resolve(user=user, model_id=model_id))


@dataclass(frozen=True)
class Resolution:
    """A model this developer may call, with their budget as it was read with their access."""

    # With its provider, from this process's cached configuration: shared, read-only.
    model: LLMModel
    budget: BudgetState


def model_resolve(*, user: AbstractBaseUser, model_id: int) -> Resolution:
    """The model with this id if this developer may call it now, else ModelUnavailable; one
    query. With spend_admit, call_admit's two steps, for a caller that reports an unavailable
    model with its other input's errors (the chat turn's serializer)."""
    # Their cached model list (what they were offered) decides.
    model, budget = offered_model(user, model_id)
    if model is None:
        raise ModelUnavailable
    return Resolution(model, budget)


class OtherApi(CallRefused):
    """The model is this developer's, but the API the client called does not serve it (the
    gateway translates none yet)."""


def gateway_names(rows: list[dict[str, Any]]) -> dict[int, str]:
    """The name a gateway client calls each of these models by (rows of usable_models), no two
    alike: its identifier where no other model has it; else `<account slug>/<identifier>`
    where that is no other model's identifier; else that with `#<model id>`: an identifier
    may itself look like one (OpenRouter's `openai/gpt-4.1` beside OpenAI's gpt-4.1). An
    account's slug is unique, so `<account slug>/<identifier>` names one model."""
    counts = Counter(row["identifier"] for row in rows)
    bare = {identifier for identifier, count in counts.items() if count == 1}
    names = {}
    for row in rows:
        if row["identifier"] in bare:
            names[row["id"]] = row["identifier"]
        elif account_name(row) not in counts:
            names[row["id"]] = account_name(row)
        else:
            names[row["id"]] = f"{account_name(row)}#{row['id']}"
    return names


def account_name(row: dict[str, Any]) -> str:
    return f"{row['provider_slug']}/{row['identifier']}"


def named_resolve(
    *, user: AbstractBaseUser, name: str, serves: Callable[[dict[str, Any]], bool]
) -> Resolution:
    """The model a gateway client names if this developer may call it now, else
    ModelUnavailable; OtherApi when the API the client called does not serve it (`serves`:
    that API's test of a usable_models row). The name as gateway_names lists it; else
    `<account slug>/<identifier>` of a model listed by another name. One query, as
    model_resolve."""
    rows, budget, configuration = usable_models(user)
    names = gateway_names(rows)
    matches = [row for row in rows if names[row["id"]] == name] or [
        row for row in rows if account_name(row) == name
    ]
    if len(matches) != 1:
        raise ModelUnavailable
    if not serves(matches[0]):
        raise OtherApi
    model = configuration.model_for_call(matches[0]["id"])
    if model is None:
        raise ModelUnavailable
    return Resolution(model, budget)


def spend_admit(*, user: AbstractBaseUser, resolution: Resolution) -> Admission:
    """Let this developer call a model model_resolve gave them, or raise BudgetSpent (decided
    from the budget read with it; read again, under their lock, only when a limit applies to
    them), or LimitReached (a limit of theirs: turns at once, per minute; billing.limits)."""
    refusal = spend_refusal(state=resolution.budget, model=resolution.model)
    if refusal:
        # An allowance lowered below what was spent had no call to alert on: this does (at
        # once, outside a transaction, as a request's refusal is).
        transaction.on_commit(partial(alerts_soon, user.pk, resolution.budget.month))
        raise BudgetSpent(refusal)
    lease_id = turn_lease(
        user.pk,
        resolution.budget.limits,
        budget_check=partial(spent_raise, user.pk, resolution.model),
    )
    return Admission(
        user_id=user.pk,
        model=resolution.model,
        lease_id=lease_id,
        allowance=resolution.budget.allowance,
    )


def spent_raise(user_id: int, model: LLMModel) -> None:
    """BudgetSpent when this developer's budget, read now, is spent (turn_lease reads it again
    under their lock)."""
    refusal = spend_refusal(state=budget_state(user_id), model=model)
    if refusal:
        raise BudgetSpent(refusal)


@dataclass(frozen=True)
class Admission:
    """A developer let through to a model, for one turn: the calls it makes are billed to
    them, and the turn holds one of their slots until it ends (`held`)."""

    user_id: int
    # With its provider (shared, read-only): a call builds its client without a query.
    model: LLMModel
    # The turn's lease under the developer's limits; None when no limit applies to them.
    lease_id: int | None = None
    # The allowance that let them through: its group is charged for the turn's calls.
    allowance: Allowance | None = None

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """While the turn runs: its lease renewed (at once: it held only for the turn's
        start); then ended, however the turn ends (an admission whose turn never ran lets its
        lease expire). LimitReached, before the turn runs, when its start came too late."""
        if self.lease_id is None:
            yield
            return
        renewing = None
        try:
            try:
                await in_thread(partial(lease_start, self.lease_id))
            except DatabaseError as error:  # the turn goes on; its lease expires unless renewed
                logger.warning("A turn's lease could not be renewed: %s", type(error).__name__)
            renewing = asyncio.create_task(lease_renewals(self.lease_id))
            yield
        finally:
            # However it ends, from its start on: a caller gone while the turn started too.
            if renewing is not None:
                renewing.cancel()
            # Shielded: a caller gone away mid-write doesn't keep the slot.
            await asyncio.shield(lease_release(self.lease_id))

    def call(
        self,
        *,
        chat: ChatInput,
        settings: ModelSettings | None = None,
        kind: str = UsageRecord.Kind.CHAT,
        store: Callable[[MeteredCall[T]], T] | None = None,
    ) -> MeteredCall[T]:
        """One provider call with `chat`, at the model's settings unless given. `store`, run
        in the transaction that records the call when it ends, stores the caller's own row
        of it (the call tells how it ended) and returns it."""
        return MeteredCall(
            admission=self,
            sent=chat,
            settings=self.model.settings() if settings is None else settings,
            kind=kind,
            store=store,
        )

    def relay(
        self, *, request: Relay, token_id: int | None = None, client_name: str = ""
    ) -> MeteredCall[None]:
        """One gateway call: the client's request in the provider's own API, at the model's
        settings; recorded with the token that made it and the client's name."""
        return MeteredCall(
            admission=self,
            sent=request,
            settings=self.model.settings(),
            kind=UsageRecord.Kind.GATEWAY,
            store=None,
            token_id=token_id,
            client_name=client_name,
        )


async def lease_renewals(lease_id: int) -> None:
    """Renew a running turn's lease every third of its length, until cancelled."""
    while True:
        await asyncio.sleep(django_settings.TURN_LEASE_SECONDS / 3)
        await lease_keep(lease_id)


async def lease_keep(lease_id: int) -> None:
    """Renew a running turn's lease; one that fails (the database down) is tried again at the
    next renewal, and the turn goes on."""
    try:
        await in_thread(partial(lease_renew, lease_id))
    except Exception as error:
        logger.warning("A turn's lease could not be renewed: %s", type(error).__name__)


async def lease_release(lease_id: int) -> None:
    try:
        await database(partial(lease_end, lease_id))
    except Exception as error:  # the database stayed down: the lease expires instead
        logger.error("A turn's lease could not be ended: %s", type(error).__name__)


@dataclass
class MeteredCall(Generic[T]):
    """A provider call as far as it went: what was sent, the text received, how it ended,
    the tokens the provider reported; an async context manager whose exit records it, and
    an async iterator of the provider's events."""

    admission: Admission
    # A chat's input, or a gateway client's request.
    sent: ChatInput | Relay
    settings: ModelSettings
    kind: str
    store: Callable[[MeteredCall[T]], T] | None
    # The gateway's: the personal access token that made the call, and the client's name.
    token_id: int | None = None
    client_name: str = ""
    called_at: datetime = field(default_factory=timezone.now, init=False)
    # The client that made the call: whether the provider may bill it.
    client: ProviderClient | None = field(default=None, init=False)
    text: list[str] = field(default_factory=list, init=False)
    # The rest of the model's output received (thinking, tool calls' arguments): billed too.
    other_output: list[str] = field(default_factory=list, init=False)
    stop_reason: StopReason = field(default=StopReason.COMPLETE, init=False)
    usage: Usage | None = field(default=None, init=False)
    # Whether the provider ended the answer (a Finish), rather than the call being cut short.
    finished: bool = field(default=False, init=False)
    # How it ended otherwise: a provider error (a deadline is one), or the caller gone.
    error: ProviderError | None = field(default=None, init=False)
    cancelled: bool = field(default=False, init=False)
    # The caller's row, once the call is recorded with it.
    stored: T | None = field(default=None, init=False)
    # The stream of events once iterated: closed on exit, before the call is recorded.
    events: AsyncGenerator[StreamEvent] | None = field(default=None, init=False, repr=False)

    @property
    def answer(self) -> str:
        return "".join(self.text)

    @property
    def unsent(self) -> bool:
        """Refused before anything was sent (the model's settings forbid what the client
        asked; every key of the account cooling down): no call was made, so none is recorded
        (the caller's own row still is)."""
        return self.error is not None and self.error.unsent

    @property
    def cut_short(self) -> bool:
        """The provider may bill the call, and it ended before the provider ended it."""
        return bool(self.client and self.client.billable) and not self.finished

    async def __aenter__(self) -> MeteredCall[T]:
        return self

    def __aiter__(self) -> AsyncGenerator[StreamEvent]:
        self.events = failover_events(self.admission.model.provider, self.attempt)
        return self.events

    async def attempt(self, client: ProviderClient) -> AsyncGenerator[StreamEvent]:
        """One try of the call with this client: its events, noted as they come."""
        self.client = client
        if isinstance(self.sent, Relay):
            source = relay_events(self.client, self.settings, self.sent)
        else:
            source = self.client.stream_chat(self.settings, self.sent)
        # Closed on the way out, however the answer ends: before anything is written.
        async with aclosing(source) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    self.text.append(event.text)
                elif isinstance(event, OtherOutput):
                    self.other_output.append(event.text)
                elif isinstance(event, Usage):
                    self.usage = event
                elif isinstance(event, Finish):
                    self.stop_reason, self.finished = event.reason, True
                yield event

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Record the call however it ended (the provider may bill it, also when the caller
        went away meanwhile), with the caller's row; shielded: a caller that goes away
        mid-write doesn't cancel it. Raises only what ended the call."""
        try:
            if self.events is not None:
                await self.events.aclose()
        except BaseException as closing:
            # Cancelled, or failed, while the stream let go: recorded all the same, then raised.
            await self.end(closing if isinstance(closing, asyncio.CancelledError) else exc)
            raise
        await self.end(exc)

    async def end(self, exc: BaseException | None) -> None:
        """Record the call as `exc` ended it (None: the provider's stream ended it)."""
        if isinstance(exc, ProviderError):
            self.error = exc
        if self.unsent and self.store is None:
            return
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            self.cancelled = True
        store = partial(self.record, self.store) if self.store else None
        write = partial(stored_or_recorded, store, partial(self.record, None))
        self.stored = await asyncio.shield(in_thread(write))

    def record(self, store: Callable[[MeteredCall[T]], T] | None) -> T | None:
        """The call in the ledger, with the caller's row when `store` is given. Its own
        transaction: a retried attempt records the call once; both or neither."""
        with transaction.atomic():
            if self.unsent:
                return store(self) if store else None
            record = usage_record(
                user_id=self.admission.user_id,
                model=self.admission.model,
                called_at=self.called_at,
                kind=self.kind,
                token_id=self.token_id,
                client_name=self.client_name,
                allowance=self.admission.allowance,
                # Once it commits: the answer's end and the slot's release don't wait.
                alerts=alerts_soon,
                **usage_of(self),
            )
            if self.admission.lease_id is not None:
                tokens = (record.input_tokens or 0) + (record.output_tokens or 0)
                call_tokens(self.admission.user_id, tokens)
            return store(self) if store else None


async def failover_events(
    provider: Any, attempt: Callable[[ProviderClient], AsyncIterator[StreamEvent]]
) -> AsyncGenerator[StreamEvent]:
    """The events of `attempt` with a client of the account's own key; where it has backup
    keys, with the first key not cooling down, and once more with the next when that one
    fails before its first event (key_pools)."""
    pool = provider.key_pool
    if not pool or len(pool) < 2:
        # Its own key, or the one key it has that may be sent (a backup key, when its own was
        # removed).
        client = provider.client(pool[0].credentials) if pool else provider.client()
        async with aclosing(attempt(client)) as events:
            async for event in events:
                yield event
        return
    keys = await keys_in_order(provider, pool)
    secrets = tuple(secret for key in pool for secret in key.credentials.values() if secret)
    for key, next_key in zip(keys, [*keys[1:2], None], strict=False):
        began = False
        try:
            client = provider.client(key.credentials)
            client.other_secrets = secrets
            async with aclosing(attempt(client)) as events:
                async for event in events:
                    if not began:
                        began = True
                        if key_use_due(key):
                            await key_write(partial(key_used, provider, key))
                    yield event
            return
        except ProviderError as error:
            # After the first event, the caller saw part of an answer: never tried again.
            if began or error.key_fault is None:
                raise
            await key_write(partial(key_cool, provider, key, error))
            if next_key is None:
                raise
            failover_log(provider, key, error, next_key)


async def keys_in_order(provider: Any, pool: list[PoolKey]) -> list[PoolKey]:
    """The pool's keys to try, as every process sees them; in the pool's order when the
    database can't tell which are cooling (the call goes on)."""
    try:
        return await in_thread(partial(keys_to_try, provider, pool))
    except DatabaseError as error:
        logger.warning("The keys' cooldowns could not be read: %s", type(error).__name__)
        return pool


async def key_write(write: Callable[[], None]) -> None:
    """A key's cooldown or use noted; the call goes on when the database refuses it."""
    try:
        await in_thread(write)
    except DatabaseError as error:
        logger.warning("A key's cooldown or use could not be noted: %s", type(error).__name__)


def stored_or_recorded(store: Callable[[], T] | None, record: Callable[[], object]) -> T | None:
    """What a provider call produced, stored with its usage by `store`; when that fails for
    good (the database stayed down through the retries, or refused the row), or there is
    nothing to store, the usage alone by `record`: the provider bills the call whether or not
    we kept what it produced. Each retried; None when only the usage was recorded, or not even
    that (logged)."""
    if store is not None:
        try:
            return with_retries(store)
        except Exception as error:
            logger.error("A provider call's result could not be stored: %s", type(error).__name__)
    try:
        with_retries(record)
    except Exception as error:
        logger.error("A provider call could not be recorded: %s", type(error).__name__)
    return None


# Bytes of UTF-8 per token, for a call cut short before the provider counted it: needs no
# tokenizer, and errs high. English and code (about 4 bytes a token) come out at twice their
# count; Chinese and Japanese (3 bytes a character, 1 to 1.5 tokens) at about theirs.
BYTES_PER_TOKEN = 2


def usage_of(call: MeteredCall[Any]) -> dict[str, Any]:
    """usage_record's arguments for a call: the counts as reported; estimated from the bytes
    sent and received (the answer's text and the rest of its output: thinking, a tool call's
    arguments) when output arrived without them, or when the call was cut short with fewer
    output tokens counted than it sent (the provider bills what it sent, and a developer who
    leaves early must not spend for free, even before the first word). A call with no output
    that was refused, or that the provider ended, is recorded as reported."""
    usage = call.usage
    if not call.text and not call.other_output and not call.cut_short:
        return {"usage": usage}
    received = tokens_in(*call.text, *call.other_output)
    if usage is not None and usage.input_tokens is not None:
        if call.finished or (usage.output_tokens or 0) >= received:
            return {"usage": usage}
        return {"usage": replace(usage, output_tokens=received), "estimated": True}
    return {"usage": Usage(tokens_sent(call.sent), received), "estimated": True}


def tokens_sent(sent: ChatInput | Relay) -> int:
    """At most this many tokens sent: a chat's text, or the whole JSON a client sent (its
    text with the JSON around it, which errs high as the estimate must)."""
    if isinstance(sent, Relay):
        return tokens_in(json.dumps(sent.body, ensure_ascii=False))
    return tokens_in(sent.system, *(message["content"] for message in sent.messages))


def tokens_in(*texts: str) -> int:
    """At most this many tokens: UTF-8 bytes / 2, rounded up."""
    return -(-sum(len(text.encode()) for text in texts) // BYTES_PER_TOKEN)
