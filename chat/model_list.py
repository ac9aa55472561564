"""The list of models developers can chat with: built once per process, then brought up to
date from llmadmin's change log (only what changed), cut per access scope (the developer's
groups) and cached with its own ETag."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import threading
import uuid
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, NamedTuple

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import Q, Subquery
from django.utils import timezone

from billing.budgets import (
    BudgetState,
    budget_of,
    budget_sql,
    budget_states,
    budget_summary,
    month_start,
)
from llmadmin.access import AccessLists, access_lists
from llmadmin.key_pools import pool_of
from llmadmin.models import (
    SECRET_FIELDS,
    Availability,
    ConfigurationChange,
    ConfigurationVersion,
    LLMModel,
    Provider,
    api_key_ids,
)
from llmadmin.selectors import providers_in_registry_order

# A model as the list gives it; read with .values(), no ORM objects (10,000 models: 22 ms).
MODEL_FIELDS = ("id", "identifier", "display_name", "provider_id", "context_limit", "is_default")
ROW_FIELDS = (*MODEL_FIELDS, "restricted", "monthly_cap")
# Bytes of lists kept per process (10,000 models make a list of about 1 MB); past that, the
# least recently used scope's goes.
MAX_CACHED_BYTES = 64 * 1024 * 1024
# Bytes of developers' readings kept per configuration (Configuration.served_from); past that,
# all go.
MAX_READING_BYTES = 16 * 1024 * 1024
# Past these, a process that fell behind reads everything again rather than the changes.
MAX_CHANGES_APPLIED = 200
MAX_MODELS_UPDATED = 1000
# Past this many moves in one provider's list, sorting it again is cheaper than placing each.
MAX_PLACED = 64

Scope = tuple[frozenset[int], int | None]


class Part(NamedTuple):
    """A provider's group in a scope's list: where it starts and ends in the list, the digest
    of its bytes, and how many of the provider's offered models the scope may not use."""

    start: int
    end: int
    digest: bytes
    kept: int


class Group(NamedTuple):
    """A provider's group as a scope's list is joined from it: its bytes, their digest, and
    how many of the provider's offered models the scope may not use."""

    data: bytes | memoryview
    digest: bytes
    kept: int


@dataclass(frozen=True)
class Rendered:
    """A scope's list as JSON, each provider's group in it, and its ETag: the digest of the
    list with each group's bytes replaced by their digest (a group kept from an earlier
    configuration is not hashed again)."""

    body: bytes
    parts: dict[int, Part]
    etag: str


@dataclass(frozen=True)
class ServedList:
    """A scope's list as last served: its body with the budget it was served with, where that
    budget starts in it, its providers' groups, and the ETags of the list alone and of the
    body."""

    list_etag: str
    budget_at: int
    budget: bytes
    etag: str
    body: bytes
    parts: dict[int, Part]

    @classmethod
    def of(cls, rendered: Rendered, budget: bytes) -> ServedList:
        """A list just rendered, served with this budget."""
        head = memoryview(rendered.body)[:-1]
        body = b"".join([head, BUDGET_KEY, budget, b"}"])
        return cls(
            rendered.etag,
            len(head) + len(BUDGET_KEY),
            budget,
            etag_of(rendered.etag, budget),
            body,
            rendered.parts,
        )

    def with_budget(self, budget: bytes) -> ServedList:
        """The same list with another budget: one copy of the list, made only when the budget
        differs from the last one served (a fresh megabyte on every request, at 10,000 models,
        was most of what the list cost beyond its floor)."""
        body = b"".join([memoryview(self.body)[: self.budget_at], budget, b"}"])
        return ServedList(
            self.list_etag,
            self.budget_at,
            budget,
            etag_of(self.list_etag, budget),
            body,
            self.parts,
        )


BUDGET_KEY = b',"budget":'


def etag_of(list_etag: str, budget: bytes) -> str:
    return f'"{hashlib.sha256(list_etag.encode() + budget).hexdigest()[:32]}"'


@dataclass
class Configuration:
    """Every enabled model with who may use it, for one fingerprint; cut per scope.

    Never changed once built: a change makes a new one (threads keep a consistent one)."""

    fingerprint: str
    # The encryption keys in use: which providers are available depends on them.
    key_ids: tuple[str, ...]
    # The last change of the log (id, token) this configuration includes; None if none.
    applied: tuple[int, uuid.UUID] | None
    providers: list[dict[str, Any]]
    # By model id: every enabled model's row, with its JSON for the list when its provider is
    # available.
    rows: dict[int, dict[str, Any]]
    # By provider id: enabled models of available providers, in display order.
    models: dict[int, list[dict[str, Any]]]
    # By provider id: the ids of enabled models of unavailable providers.
    unavailable: dict[int, set[int]]
    restricted: set[int]
    access: AccessLists
    # The models listing each group and user (the access lists read the other way): only these
    # groups and users make two developers' lists differ.
    group_listings: dict[int, set[int]]
    user_listings: dict[int, set[int]]
    # Monthly caps per developer, by id of offered model (see billing.budgets).
    caps: dict[int, Decimal]
    # The enabled model that is the default, if any.
    default_id: int | None
    # Each scope's list as last served, least recently used first.
    lists: OrderedDict[Scope, ServedList] = field(default_factory=OrderedDict)
    cached_bytes: int = 0
    lists_lock: threading.Lock = field(default_factory=threading.Lock)
    # Offered models as calls take them, by id: read on each one's first call under this
    # configuration. Not init fields: a configuration made from another starts empty.
    calls: dict[int, LLMModel | None] = field(default_factory=dict, init=False)
    calls_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    # What each developer's list was served from (their scope and their budget's JSON), by
    # what their login read (cached_model_list), and the bytes that holds.
    served_from: dict[tuple[Any, ...], tuple[Scope, bytes]] = field(
        default_factory=dict, init=False
    )
    served_from_bytes: int = field(default=0, init=False)
    # The lists of the configuration this one was updated from, each taken on its scope's
    # first render here (render_from), and that configuration's models by provider: a
    # provider's group whose models are the same objects is the same bytes, and is copied.
    earlier: dict[Scope, ServedList] = field(default_factory=dict, init=False)
    earlier_bytes: int = field(default=0, init=False)
    earlier_models: dict[int, list[dict[str, Any]]] = field(default_factory=dict, init=False)
    # Replaced: it keeps no list or reading (retire).
    retired: bool = field(default=False, init=False)

    @cached_property
    def offered(self) -> frozenset[int]:
        """The ids of the models some list offers."""
        return frozenset(model["id"] for models in self.models.values() for model in models)

    def model_for_call(self, model_id: int) -> LLMModel | None:
        """The offered model with this id, with its provider (its key decrypted once), read
        on its first call under this configuration and then shared by this process's calls,
        which only read it; None when no list offers it."""
        with self.calls_lock:
            if model_id in self.calls:
                return self.calls[model_id]
        if model_id not in self.offered:
            return None
        # Read after the fingerprint: never older than this configuration.
        model = LLMModel.objects.select_related("provider").filter(pk=model_id).first()
        if model is not None and self.backup_keys.get(model.provider_id):
            # The keys its calls try (one query, where the account has backup keys).
            model.provider.key_pool = pool_of(model.provider)
        with self.calls_lock:
            return self.calls.setdefault(model_id, model)

    @cached_property
    def backup_keys(self) -> dict[int, bool]:
        """Whether each provider has backup keys, by id."""
        return {provider["id"]: provider["backup_keys"] for provider in self.providers}

    def __post_init__(self) -> None:
        self.listed_groups = frozenset(self.group_listings)
        self.listed_users = frozenset(self.user_listings)

    def served_list(self, scope: Scope, budget: bytes) -> tuple[str, bytes]:
        """This scope's ETag and body with this budget: the list rendered on the scope's first
        request, then kept (while it stays in the cache) as last served, so that the next
        developer with the same budget gets the same bytes, and another budget costs one copy
        of the list."""
        with self.lists_lock:
            served = self.lists.get(scope)
            if served is not None:
                self.lists.move_to_end(scope)
        if served is not None and served.budget == budget:
            return served.etag, served.body
        if served is None:
            with self.lists_lock:
                earlier = self.earlier.pop(scope, None)
                self.earlier_bytes -= len(earlier.body) if earlier else 0
            served = ServedList.of(self.render(scope, earlier), budget)
        else:
            served = served.with_budget(budget)
        with self.lists_lock:
            if self.retired:
                return served.etag, served.body
            replaced = self.lists.get(scope)
            self.lists[scope] = served
            self.lists.move_to_end(scope)
            self.cached_bytes += len(served.body) - (len(replaced.body) if replaced else 0)
            # The earlier configuration's lists go first: they only save a render.
            while self.cached_bytes + self.earlier_bytes > MAX_CACHED_BYTES and self.earlier:
                _, dropped = self.earlier.popitem()
                self.earlier_bytes -= len(dropped.body)
            while self.cached_bytes > MAX_CACHED_BYTES and len(self.lists) > 1:
                _, evicted = self.lists.popitem(last=False)
                self.cached_bytes -= len(evicted.body)
        return served.etag, served.body

    def render_from(self, base: Configuration) -> None:
        """Render each scope's list from base's, where base has one: only the groups of the
        providers whose models changed are joined again (a change costs a copy of each list,
        not an encoding of every model's place in it)."""
        with base.lists_lock:
            self.earlier = dict(base.lists)
        self.earlier_bytes = sum(len(served.body) for served in self.earlier.values())
        self.earlier_models = base.models

    def remember_served(self, reading: tuple[Any, ...], scope: Scope, budget: bytes) -> None:
        """Keep what this reading's list was served from, within MAX_READING_BYTES."""
        size = len(budget) + len(reading[2] or "")
        with self.lists_lock:
            if self.retired:
                return
            if self.served_from_bytes + size > MAX_READING_BYTES:
                self.served_from.clear()
                self.served_from_bytes = 0
            self.served_from[reading] = (scope, budget)
            self.served_from_bytes += size

    def retire(self) -> None:
        """Drop the lists and readings kept, and keep none from now on: a replaced
        configuration serves only the few lists a change overtook, and a process keeps one
        configuration's lists."""
        with self.lists_lock:
            self.retired = True
            self.lists.clear()
            self.cached_bytes = 0
            self.served_from.clear()
            self.served_from_bytes = 0
            self.earlier.clear()
            self.earlier_bytes = 0

    def scope(self, user_id: int, group_ids: set[int]) -> Scope:
        """What decides this developer's list: developers with the same scope share it."""
        return (
            frozenset(group_ids) & self.listed_groups,
            user_id if user_id in self.listed_users else None,
        )

    def usable(self, model_id: int, scope: Scope) -> bool:
        groups, user_id = scope
        return self.access.permits(
            model_id, restricted=model_id in self.restricted, group_ids=groups, user_id=user_id
        )

    def kept_from(self, scope: Scope) -> set[int]:
        """The restricted models this scope may not use: those its groups' and user's
        listings don't name (AccessLists.permits, for a whole scope at once)."""
        groups, user_id = scope
        permitted = set().union(*(self.group_listings[group_id] for group_id in groups))
        if user_id is not None:
            permitted |= self.user_listings[user_id]
        return self.restricted - permitted

    def caps_for(self, scope: Scope) -> dict[int, Decimal]:
        """The monthly caps of the models in this scope's list."""
        return {
            model_id: cap for model_id, cap in self.caps.items() if self.usable(model_id, scope)
        }

    def render(self, scope: Scope, earlier: ServedList | None = None) -> Rendered:
        """This scope's list as JSON, joined from each model's JSON rendered once per
        change of the model: a scope costs a join, not an encoding of every model. A
        provider's group is taken from this scope's earlier list (render_from) when the
        provider's models are the same objects: what the scope may not use of them is then
        the same too, as only their own access lists, read again with them, decide it."""
        groups: list[tuple[int, Group]] = []
        unavailable = []
        first_id = None
        kept = self.kept_from(scope)
        # Models offered to others but not to this developer: access, not setup, keeps them.
        kept_from_them = 0
        for provider in self.providers:
            offered = self.models.get(provider["id"], [])
            group = self.group(provider, offered, kept, earlier)
            if group is not None:
                groups.append((provider["id"], group))
                kept_from_them += group.kept
                first_id = first_id or next(m["id"] for m in offered if m["id"] not in kept)
                continue
            kept_from_them += len(offered)
            hidden = self.unavailable.get(provider["id"], set()) - kept
            if hidden:
                unavailable.append(
                    {
                        "provider_id": provider["id"],
                        "provider_type": provider["type"],
                        "provider_label": provider["label"],
                        "reason": provider["availability"],
                        "model_count": len(hidden),
                    }
                )
        default = self.rows.get(self.default_id) if self.default_id not in kept else None
        # A developer who may not use the default gets their first model.
        default_id = default["id"] if default and "json" in default else first_id
        head = b"".join([b'{"default_model_id":', encode(default_id), b',"groups":['])
        tail = b"".join(
            [
                b'],"unavailable_providers":',
                encode(unavailable),
                b',"restricted_model_count":',
                encode(kept_from_them),
                b"}",
            ]
        )
        parts, start = {}, len(head)
        for provider_id, group in groups:
            parts[provider_id] = Part(start, start + len(group.data), group.digest, group.kept)
            start += len(group.data) + 1  # and its comma
        digests = b"".join([head, *(group.digest for _, group in groups), tail])
        return Rendered(
            body=b"".join([head, b",".join(group.data for _, group in groups), tail]),
            parts=parts,
            etag=f'"{hashlib.sha256(digests).hexdigest()[:32]}"',
        )

    def group(
        self,
        provider: dict[str, Any],
        offered: list[dict[str, Any]],
        kept: set[int],
        earlier: ServedList | None,
    ) -> Group | None:
        """This provider's group in a scope's list (None when the scope may use none of its
        offered models): from the scope's earlier list when the provider's models are the
        same objects, else joined from its models' JSON."""
        if earlier is not None and self.earlier_models.get(provider["id"]) is offered:
            part = earlier.parts.get(provider["id"])
            if part is None:
                return None
            return Group(memoryview(earlier.body)[part.start : part.end], part.digest, part.kept)
        fragments = [model["json"] for model in offered if model["id"] not in kept]
        if not fragments:
            return None
        head = encode(
            {
                "provider_id": provider["id"],
                "provider_type": provider["type"],
                "provider_label": provider["label"],
            }
        )
        data = b"".join([head[:-1], b',"models":[', b",".join(fragments), b"]}"])
        return Group(data, hashlib.sha256(data).digest(), len(offered) - len(fragments))


_encoder = json.JSONEncoder(separators=(",", ":"))


def encode(value: Any) -> bytes:
    return _encoder.encode(value).encode()


def in_list_order(row: dict[str, Any]) -> tuple[str, int]:
    return row["display_name"], row["id"]


def placed(
    ordered: list[dict[str, Any]], removed: list[dict[str, Any]], added: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """A copy of a provider's list in display order without these rows and with those."""
    if len(removed) + len(added) > MAX_PLACED:
        gone = {row["id"] for row in removed}
        return sorted([row for row in ordered if row["id"] not in gone] + added, key=in_list_order)
    ordered = ordered.copy()
    for row in removed:
        del ordered[bisect_left(ordered, in_list_order(row), key=in_list_order)]
    for row in added:
        insort(ordered, row, key=in_list_order)
    return ordered


class CopyOnWrite:
    """Sets by id taken from a configuration, each copied before its first change here, so
    that configuration's stay as they were."""

    def __init__(self, sets: dict[int, set[int]]) -> None:
        self.sets, self.copied = dict(sets), set()

    def __getitem__(self, key: int) -> set[int]:
        if key not in self.copied:
            self.sets[key] = set(self.sets.get(key, ()))
            self.copied.add(key)
        return self.sets[key]

    def nonempty(self) -> dict[int, set[int]]:
        return {key: ids for key, ids in self.sets.items() if ids}


def with_changes(
    base: Configuration,
    *,
    fingerprint: str,
    applied: tuple[int, uuid.UUID] | None,
    providers: list[dict[str, Any]],
    model_ids: Iterable[int],
    rows: Iterable[dict[str, Any]],
    access: AccessLists,
) -> Configuration:
    """A new configuration: base with these models read again (rows: the enabled ones among
    them, access: their access lists), base's own dicts, sets and lists left as they were."""
    available = {p["id"]: p for p in providers if p["availability"] == Availability.AVAILABLE}
    by_id, unavailable = dict(base.rows), CopyOnWrite(base.unavailable)
    restricted, caps, default_id = set(base.restricted), dict(base.caps), base.default_id
    groups, users = dict(base.access.groups), dict(base.access.users)
    group_listings, user_listings = (
        CopyOnWrite(base.group_listings),
        CopyOnWrite(base.user_listings),
    )
    removed: dict[int, list[dict[str, Any]]] = {}
    added: dict[int, list[dict[str, Any]]] = {}
    for model_id in model_ids:
        old = by_id.pop(model_id, None)
        if old is not None and "json" in old:
            removed.setdefault(old["provider_id"], []).append(old)
        elif old is not None:
            unavailable[old["provider_id"]].discard(model_id)
        restricted.discard(model_id)
        caps.pop(model_id, None)
        default_id = None if default_id == model_id else default_id
        for group_id in groups.pop(model_id, ()):
            group_listings[group_id].discard(model_id)
        for user_id in users.pop(model_id, ()):
            user_listings[user_id].discard(model_id)
    for row in rows:
        by_id[row["id"]] = row
        if row["restricted"]:
            restricted.add(row["id"])
        if row["is_default"]:
            default_id = row["id"]
        provider = available.get(row["provider_id"])
        if provider is None:
            unavailable[row["provider_id"]].add(row["id"])
            continue
        if row["monthly_cap"] is not None:
            caps[row["id"]] = row["monthly_cap"]
        row["json"] = encode(
            {
                "id": row["id"],
                "identifier": row["identifier"],
                "display_name": row["display_name"],
                "provider_id": provider["id"],
                "provider_type": provider["type"],
                "provider_label": provider["label"],
                "context_limit": row["context_limit"],
                "is_default": row["is_default"],
            }
        )
        added.setdefault(row["provider_id"], []).append(row)
    models = dict(base.models)
    for provider_id in removed.keys() | added.keys():
        models[provider_id] = placed(
            models.get(provider_id, []), removed.get(provider_id, []), added.get(provider_id, [])
        )
    for model_id, group_ids in access.groups.items():
        groups[model_id] = group_ids
        for group_id in group_ids:
            group_listings[group_id].add(model_id)
    for model_id, user_ids in access.users.items():
        users[model_id] = user_ids
        for user_id in user_ids:
            user_listings[user_id].add(model_id)
    return Configuration(
        fingerprint=fingerprint,
        key_ids=api_key_ids(),
        applied=applied,
        providers=providers,
        rows=by_id,
        models={provider_id: rows for provider_id, rows in models.items() if rows},
        unavailable=unavailable.nonempty(),
        restricted=restricted,
        access=AccessLists(groups, users),
        group_listings=group_listings.nonempty(),
        user_listings=user_listings.nonempty(),
        caps=caps,
        default_id=default_id,
    )


def providers_listed() -> list[dict[str, Any]]:
    """The providers as the lists show them, in registry order; no key loaded or decrypted."""
    return [
        {
            "id": p.pk,
            "type": p.type,
            "slug": p.slug,
            "label": p.label,
            "availability": p.availability,
            "backup_keys": p.backup_keys_stored,
        }
        for p in providers_in_registry_order(Provider.objects.defer(*SECRET_FIELDS))
    ]


EMPTY = Configuration(
    fingerprint="",
    key_ids=(),
    applied=None,
    providers=[],
    rows={},
    models={},
    unavailable={},
    restricted=set(),
    access=AccessLists({}, {}),
    group_listings={},
    user_listings={},
    caps={},
    default_id=None,
)


# (id, token, kind, ids, previous token)
Change = tuple[int, uuid.UUID, str, list[int], uuid.UUID | None]


def changes_since(current: Configuration | None) -> list[Change]:
    """The changes logged since the one this configuration applied last, that one included,
    newest first (at most one more than are ever applied); the newest always, for a full
    rebuild to start from when these can't tell."""
    changes = ConfigurationChange.objects.order_by("-pk").values_list(
        "pk", "token", "kind", "ids", "previous"
    )
    if current is None or current.applied is None:
        return list(changes[:1])
    newest = ConfigurationChange.objects.order_by("-pk").values("pk")[:1]
    since = Q(pk__gte=current.applied[0]) | Q(pk=Subquery(newest))
    return list(changes.filter(since)[: MAX_CHANGES_APPLIED + 1])


def build_configuration(fingerprint: str, changes: list[Change]) -> Configuration:
    """Everything every list is cut from: four queries after the changes', no key loaded or
    decrypted."""
    return with_changes(
        EMPTY,
        fingerprint=fingerprint,
        # Read before the rest: a change committed meanwhile is applied again, later.
        applied=changes[0][:2] if changes else None,
        providers=providers_listed(),
        model_ids=(),
        rows=LLMModel.objects.filter(enabled=True).values(*ROW_FIELDS),
        access=access_lists(),
    )


def updated_configuration(
    base: Configuration, fingerprint: str, changes: list[Change]
) -> Configuration | None:
    """Base with only what changed since read again (up to four queries after the changes'),
    or None when the changes can't tell what changed: nothing logged yet, the change base
    applied last pruned or not in this database's history (restored, rolled back), a change
    not logged (the chain of tokens broken: a process of the previous release), other
    encryption keys, too many changes, a provider's availability changed, or a change of
    anything."""
    if (
        base.applied is None
        or base.key_ids != api_key_ids()
        or not changes
        or changes[-1][:2] != base.applied
        or len(changes) > MAX_CHANGES_APPLIED
        or fingerprint_of(changes[0][1]) != fingerprint
        or any(newer[4] != older[1] for newer, older in itertools.pairwise(changes))
    ):
        return None
    model_ids: set[int] = set()
    providers = base.providers
    for _, _, kind, ids, _ in changes[:-1]:
        if kind == ConfigurationChange.Kind.MODELS:
            model_ids.update(ids)
        elif kind == ConfigurationChange.Kind.PROVIDERS and providers is base.providers:
            providers = providers_listed()
            if providers != base.providers:
                return None
        elif kind != ConfigurationChange.Kind.PROVIDERS:
            return None
    if len(model_ids) > MAX_MODELS_UPDATED:
        return None
    rows: Collection[dict[str, Any]] = ()
    access = AccessLists({}, {})
    if model_ids:
        # Making a model the default unsets the previous one without a signal: read it too.
        if base.default_id is not None:
            model_ids.add(base.default_id)
        rows = LLMModel.objects.filter(pk__in=model_ids, enabled=True).values(*ROW_FIELDS)
        access = access_lists(model_ids)
    configuration = with_changes(
        base,
        fingerprint=fingerprint,
        applied=changes[0][:2],
        providers=providers,
        model_ids=model_ids,
        rows=rows,
        access=access,
    )
    configuration.render_from(base)
    return configuration


# Where the request's login (its session, config/sessions.py, or its gateway token,
# gateway/tokens.py) leaves what state_of reads, read with it: (month, rows as JSON), for the
# request's first state_of.
STATE_READ_WITH_LOGIN = "state_read_with_login"


def state_of(user: AbstractBaseUser) -> tuple[str, set[int], BudgetState]:
    """The configuration's fingerprint, this developer's groups and their budget: read with
    their login, else in one query.

    The fingerprint changes with every change developers' lists depend on (llmadmin's
    ConfigurationVersion, written in commit order) and with the encryption keys in use, so
    each process's cache stays right when another process made the change.
    """
    read = getattr(user, STATE_READ_WITH_LOGIN, None)
    if read is not None:
        # Once: a later reading in the same request sees what changed since.
        setattr(user, STATE_READ_WITH_LOGIN, None)
        month, text = read
        # SQLite's amounts are floats (state_sql), as its plain reading gives them: budget_of
        # rounds them alike. PostgreSQL's numerics are exact.
        exact = Decimal if connection.vendor == "postgresql" else float
        rows = json.loads(text or "[]", parse_float=exact)
        budget = budget_of(rows, user.pk, month)
    else:
        month = month_start(timezone.localdate())
        budgets, rows = budget_states([user.pk], month=month, also=(version_sql(), []))
        budget = budgets[user.pk]
    token = next((label for kind, _, _, label, _ in rows if kind == "version"), None)
    return fingerprint_of(token), set(budget.group_ids), budget


def version_sql() -> str:
    """The configuration's token, as a row of budget_query's shape."""
    # The table name only is formatted in.
    return (
        "SELECT 'version', NULL, NULL, CAST(token AS VARCHAR(36)), NULL "  # noqa: S608
        f"FROM {ConfigurationVersion._meta.db_table} WHERE id = 1"
    )


@functools.cache
def state_sql(user_column: str, vendor: str) -> str:
    """What state_of reads, for the developer in an outer query's column, as one JSON value
    (its parameters: billing.budgets.month_bounds): the session's and the gateway token's
    queries bring it along, so that the model list and a call's start read nothing more than
    the login."""
    rows = f"{budget_sql(user_column)} UNION ALL {version_sql()}"
    # SQL only is formatted in. PostgreSQL's as text: the driver would read amounts as floats.
    if vendor == "postgresql":
        return (
            "(SELECT CAST(json_agg(json_build_array(kind, who, ref, label, amount)) AS TEXT) "  # noqa: S608
            f"FROM ({rows}) AS state)"
        )
    # SQLite's JSON writes a float to 15 digits, its sums' rounding errors then rounded
    # differently from the plain query's: each amount written to 17 digits, the float itself.
    amount = "CASE WHEN amount IS NULL THEN NULL ELSE json(printf('%%!.17g', amount)) END"
    return (
        f"(SELECT json_group_array(json_array(kind, who, ref, label, {amount})) "  # noqa: S608
        f"FROM ({rows}))"
    )


def fingerprint_of(token: uuid.UUID | str | None) -> str:
    """The fingerprint of a configuration token (as either database gives it: SQLite's 32
    hex digits, PostgreSQL's dashed form, or a UUID) with the encryption keys in use."""
    version = uuid.UUID(str(token)).hex if token else None
    return hashlib.sha256(repr((version, api_key_ids())).encode()).hexdigest()


# This process's configuration; swapping the reference is atomic across threads.
_configuration: Configuration | None = None
# The one it replaced last: a developer's list whose login was read before that change is
# served from it, as of what the login read, rather than from everything read again (the log
# can't take a configuration back: 250 ms at 10,000 models).
_replaced: Configuration | None = None
# One rebuild per change per process: the other threads wait for it rather than all rebuild.
_rebuild = threading.Lock()


def current_configuration(fingerprint: str, *, as_of_login: bool = False) -> Configuration:
    """The configuration of this fingerprint. For a request whose login was read before the
    change the process applied last: with as_of_login (a list to show), the configuration
    that change replaced; else (a call's access) the current one, if the database is still at
    that change."""
    global _configuration, _replaced
    configuration = held_configuration(fingerprint, as_of_login=as_of_login)
    if configuration is None:
        with _rebuild:
            configuration = held_configuration(fingerprint, as_of_login=as_of_login)
            if configuration is None:
                configuration, kept = next_configuration(_configuration, fingerprint)
                if kept and configuration is not _configuration:
                    if _configuration is not None:
                        _configuration.retire()
                    _replaced, _configuration = _configuration, configuration
    return configuration


def held_configuration(fingerprint: str, *, as_of_login: bool) -> Configuration | None:
    """The configuration of this fingerprint if this process holds it; or for a call
    overtaken by the change the process applied last, the current configuration while it is
    the database's (one query: after a restore to the older token, it is not)."""
    current, replaced = _configuration, _replaced
    if current is not None and current.fingerprint == fingerprint:
        return current
    if replaced is None or replaced.fingerprint != fingerprint:
        return None
    if as_of_login:
        return replaced
    if current is not None and fingerprint_of(database_token()) == current.fingerprint:
        return current
    return None


def database_token() -> uuid.UUID | None:
    return ConfigurationVersion.objects.filter(pk=1).values_list("token", flat=True).first()


def next_configuration(
    current: Configuration | None, fingerprint: str
) -> tuple[Configuration, bool]:
    """The configuration of the newest change logged (a request whose login was read before
    a change is served from it), or of this fingerprint when the database has moved past the
    log (a change not logged: a process of the previous release); and whether the process
    keeps it: only if the database's token, read once its rows are, is the one it is of.
    Else a change committed while they were read may be in them under the older token, which
    a rollback or restore to it must not meet: it serves this request only."""
    changes = changes_since(current)
    newest = fingerprint_of(changes[0][1]) if changes else fingerprint
    configuration = configuration_at(current, newest, changes)
    now = fingerprint_of(database_token())
    if now == newest or now != fingerprint:
        return configuration, now == newest
    # The log can't tell what the change not logged was.
    configuration = build_configuration(fingerprint, changes)
    return configuration, fingerprint_of(database_token()) == fingerprint


def configuration_at(
    current: Configuration | None, fingerprint: str, changes: list[Change]
) -> Configuration:
    """The configuration of this fingerprint: the current one, or it updated with what
    changed since, or else built again."""
    if current is not None and current.fingerprint == fingerprint:
        return current
    updated = current and updated_configuration(current, fingerprint, changes)
    return updated or build_configuration(fingerprint, changes)


def cached_model_list(user: AbstractBaseUser) -> tuple[str, bytes]:
    """The ETag and JSON body of this developer's model list, their budget included. A
    developer whose login read what their last request's did is served from what that one
    computed, if the process still serves the same configuration: under load, reading the
    state (its JSON, the budget, the budget's JSON) was most of what the list cost beyond its
    floor. What the login read (the configuration's token, the developer's groups, budget
    and spend) and the encryption keys in use are all the list depends on, so what is kept
    is never stale."""
    read = getattr(user, STATE_READ_WITH_LOGIN, None)
    reading = read and (user.pk, *read, api_key_ids())
    # Kept on the configuration it was computed with: this one's fingerprint is the reading's.
    configuration = _configuration
    served_from = reading and configuration and configuration.served_from.get(reading)
    if served_from:
        setattr(user, STATE_READ_WITH_LOGIN, None)
        return configuration.served_list(*served_from)
    fingerprint, group_ids, budget_state = state_of(user)
    configuration = current_configuration(fingerprint, as_of_login=True)
    scope = configuration.scope(user.pk, group_ids)
    # The budget changes with every turn: joined to the scope's list, not cached with it.
    budget = encode(budget_summary(budget_state, configuration.caps_for(scope)))
    # Only under its own fingerprint: one newer than the login (a change applied since) must
    # not serve that login again, as a rollback or restore to its token brings it back.
    if reading and configuration.fingerprint == fingerprint:
        configuration.remember_served(reading, scope, budget)
    return configuration.served_list(scope, budget)


def budget_and_caps(user: AbstractBaseUser) -> tuple[BudgetState, dict[int, Decimal]]:
    """This developer's budget and the monthly caps of the models in their list: read with
    their login, else in one query (state_of)."""
    fingerprint, group_ids, budget = state_of(user)
    configuration = current_configuration(fingerprint)
    return budget, configuration.caps_for(configuration.scope(user.pk, group_ids))


def offered_model(user: AbstractBaseUser, model_id: int) -> tuple[LLMModel | None, BudgetState]:
    """The model with this id, with its provider, if it is in this developer's list (else
    None), and their budget: one query (state_of), the model from the configuration's cache.
    A call is let through at the cost of the list, not of the access and budget queries."""
    fingerprint, group_ids, budget = state_of(user)
    configuration = current_configuration(fingerprint)
    if not configuration.usable(model_id, configuration.scope(user.pk, group_ids)):
        return None, budget
    return configuration.model_for_call(model_id), budget


def usable_models(
    user: AbstractBaseUser,
) -> tuple[list[dict[str, Any]], BudgetState, Configuration]:
    """This developer's models in list order, each a row (id, identifier, display_name,
    context_limit, is_default) with its account's "provider_type" and "provider_slug"; their
    budget; and the configuration they were read from (its model_for_call gives a model to
    call). One query: what the gateway lists and resolves model names from."""
    fingerprint, group_ids, budget = state_of(user)
    configuration = current_configuration(fingerprint)
    kept = configuration.kept_from(configuration.scope(user.pk, group_ids))
    rows = [
        {**row, "provider_type": provider["type"], "provider_slug": provider["slug"]}
        for provider in configuration.providers
        for row in configuration.models.get(provider["id"], [])
        if row["id"] not in kept
    ]
    return rows, budget, configuration
