"""CPU per chat turn start, in-process, against a floor measured in the same run.

Usage: .venv/bin/python bench/turn_start.py [--turns N] [--rounds R] [--profile {new,next}]

Sets up a throwaway SQLite database (or DATABASE_URL's) with 8 providers x 25 models and a
developer in 5 groups (one with a budget) who has spent on 3 models this month. Then, in each
of R rounds, interleaved: N authenticated GETs of the floor (the model list's bytes, pre-
rendered, through the same session authentication and DRF stack), N turns that start a new
conversation and N that continue one (of two messages), each POST /api/v1/chat/ through
Django's test client (the middleware chain and the real view, in this thread) with the answer
left unread: nothing is sent upstream. Prints the load average at start and end, CPU ms per
request (time.process_time) as median (min-max) over the rounds, each turn's ratio to the floor
of its round (median (min-max)), and the queries each request runs. On SQLite the connection is
kept from one request to the next, as the served app's threads keep theirs; on PostgreSQL a
turn gives its connection back to the pool once started (an answer may stream for minutes).
--profile: where a new conversation's (or the next turn's) start spends its CPU (cProfile on
CPU time, one round), instead of the rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial

from rounds import load_line, spread
from serving import ROOT, bench_environment, providers_with_models, require

MODELS_PER_PROVIDER = 25
TURN = "/api/v1/chat/"
FLOOR = "/api/bench-floor/"


def prepare(environment: dict[str, str], conversations: int) -> tuple[object, int, list[int]]:
    """Migrate and fill the database; a logged-in test client, the model to chat with and the
    ids of `conversations` conversations of two messages each."""
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from billing.ledger import usage_record
    from billing.models import GroupBudget
    from chat.models import Conversation, Message
    from llmadmin.models import LLMModel
    from llmadmin.providers.contract import Usage

    call_command("migrate", verbosity=0)
    # Nothing listens at the providers' address.
    providers_with_models(MODELS_PER_PROVIDER, base_url="http://127.0.0.1:9/v1", restricted=False)
    developer = User.objects.create_user("bench-dev", password=secrets.token_hex())
    groups = Group.objects.bulk_create(Group(name=f"team-{n}") for n in range(5))
    developer.groups.add(*groups)
    GroupBudget.objects.create(group=groups[0], monthly_allowance=Decimal(1000))
    spent_on = list(LLMModel.objects.filter(provider__type="openai").order_by("pk")[:3])
    for model in spent_on:
        # Saved one by one: the price history is written on save.
        model.input_price, model.output_price = Decimal(3), Decimal(15)
        model.save()
        usage_record(
            user_id=developer.pk, model=model, called_at=timezone.now(), usage=Usage(1000, 500)
        )
    model = spent_on[0]
    made = Conversation.objects.bulk_create(
        Conversation(owner=developer, model=model, title="Hi") for _ in range(conversations)
    )
    Message.objects.bulk_create(
        Message(conversation=conversation, role=role, content=content)
        for conversation in made
        for role, content in (("user", "Hi"), ("assistant", "Hello! How can I help?"))
    )
    client = Client()
    client.force_login(developer)
    return client, model.pk, [conversation.pk for conversation in made]


def cpu_ms(requests: list[Callable[[], object]]) -> float:
    """CPU ms of this process per request, over these requests."""
    started = time.process_time()
    for request in requests:
        request()
    return (time.process_time() - started) * 1000 / len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200, help="requests per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=["new", "next"])
    parser.add_argument("--show-queries", action="store_true", help="print each kind's queries")
    args = parser.parse_args()
    print(load_line("start"))

    with tempfile.TemporaryDirectory() as workdir:
        client, model_id, conversations = prepare(
            bench_environment(workdir), (args.rounds + 2) * args.turns
        )
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        remaining = iter(conversations)

        def floor() -> None:
            require(client.get(FLOOR).status_code == 200, "the floor failed")

        def turn(conversation: int | None) -> None:
            payload = {"model_id": model_id, "message": "Write a haiku about queries."}
            if conversation is not None:
                payload["conversation_id"] = conversation
            response = client.post(TURN, payload, content_type="application/json")
            require(response.status_code == 200, response.status_code)

        def kinds() -> dict[str, list[Callable[[], object]]]:
            return {
                "floor": [floor] * args.turns,
                "new conversation": [lambda: turn(None)] * args.turns,
                "next turn": [partial(turn, next(remaining)) for _ in range(args.turns)],
            }

        # Warm: the configuration, the floor's bytes, the first connection.
        for requests in kinds().values():
            cpu_ms(requests)
        if args.profile:
            kind = {"new": "new conversation", "next": "next turn"}[args.profile]
            profile = cProfile.Profile(time.process_time)
            profile.runcall(cpu_ms, kinds()[kind])
            pstats.Stats(profile).sort_stats("cumulative").print_stats(60)
            return

        figures: dict[str, list[float]] = {}
        ratios: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            measured = {kind: cpu_ms(requests) for kind, requests in kinds().items()}
            for kind, ms in measured.items():
                figures.setdefault(kind, []).append(ms)
                ratios.setdefault(kind, []).append(ms / measured["floor"])
        queries = {}
        for kind, requests in kinds().items():
            with CaptureQueriesContext(connection) as captured:
                requests[0]()
            queries[kind] = len(captured)
            if args.show_queries:
                for query in captured:
                    print(f"  {kind}: {query['sql'][:110]}")

    print(f"{datetime.now():%Y-%m-%d %H:%M}, {connection.vendor}, {load_line('end')}")
    print(f"{args.rounds} rounds of {args.turns} requests per kind, interleaved")
    print("CPU ms per request, median (min-max); ratio to the floor, median (min-max)")
    for kind, values in figures.items():
        ratio = "" if kind == "floor" else spread(ratios[kind], "{:.2f}x".format)
        print(f"{kind:17} {spread(values, '{:.2f}'.format):24} {ratio:26} queries: {queries[kind]}")


if __name__ == "__main__":
    main()
