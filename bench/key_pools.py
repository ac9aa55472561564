"""What an account's backup keys cost a call, in-process, against a floor measured in the same run.

Usage: .venv/bin/python bench/key_pools.py [--calls N] [--rounds R] [--sql]

Sets up a throwaway SQLite database (or DATABASE_URL's) with four OpenAI Compatible accounts,
one model each, pointed at a loopback upstream (a process of its own, so that this process's
CPU is the caller's alone) that streams a short answer over kept-alive connections and
refuses a key made to be refused with OpenAI's 401. Each of N calls is a metered call as the
chat and the gateway run it (chat.metered's call_admit, then admission.call() iterated to the
end and recorded), awaited one after another on one event loop, its database work on the main
thread (as a request's on its thread); the cases:

- floor: an account with only its own key (no pool: no read, no write);
- pooled: its own key and one backup key, its own answering (the cooldowns' one read a call);
- failover: its own key refused (401), the backup key answering: the failed try, its
  cooldown's write, the log line (to /dev/null) and the retry. A refused key cools with no
  end, so its cooldown is cleared after each call, outside the timed part;
- all cooling: both keys cooling down: the refusal, with nothing sent or recorded.

In each of R rounds (default 5) the cases take turns call by call, N calls each (default
200), after a warm-up (the configuration, the pool, the first connections). Prints the load
average at start and end; per call, wall ms and CPU ms (time.process_time) as median (min-max)
over the rounds, each round's figure its mean over its N calls, with each case's ratio to the
floor of its round; and the queries a call runs (CaptureQueriesContext, untimed calls after
the rounds; a key's last use is written at most once a minute, so one of them may write it).
--sql: each case's statements, from one of those calls. DATABASE_URL's database keeps the
run's rows (named apart: another run adds its own).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from rounds import load_line, ratios, spread
from serving import ROOT, bench_environment, free_port, require, wait_for_port

# The upstream starts as a fresh interpreter: it never holds Django.
SPAWN = multiprocessing.get_context("spawn")
# The upstream refuses every key that starts so.
REFUSED = "sk-refused-"
REPLY = ("Hello", " from", " the", " bench")
WARM_CALLS = 20
# Calls per case whose queries are counted, after the rounds.
COUNTED_CALLS = 5


# --- The upstream: OpenAI's chat completions, streamed, or a refused key ------------------------


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(payload: str) -> bytes:
    return chunk(f"data: {payload}\n\n".encode())


def completion_chunk(choices: str) -> str:
    return (
        '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1754000000,'
        f'"model":"bench-model","choices":{choices}}}'
    )


def answer_bytes() -> bytes:
    """The whole streamed answer, as OpenAI sends it when asked for its usage."""
    deltas = [completion_chunk('[{"index":0,"delta":{"role":"assistant","content":""}}]')]
    deltas += [
        completion_chunk(f'[{{"index":0,"delta":{{"content":"{text}"}}}}]') for text in REPLY
    ]
    deltas.append(completion_chunk('[{"index":0,"delta":{},"finish_reason":"stop"}]'))
    usage = '"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16}'
    deltas.append(completion_chunk("[]")[:-1] + f",{usage}}}")
    deltas.append("[DONE]")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    return head + b"".join(sse(delta) for delta in deltas) + b"0\r\n\r\n"


def refusal_bytes() -> bytes:
    """OpenAI's answer to a key it doesn't know."""
    body = (
        b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error",'
        b'"param":null,"code":"invalid_api_key"}}'
    )
    head = (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(body)
    )
    return head + body


def serve_upstream(port: int) -> None:
    """The upstream's process: answers each request on a connection, in turn, until the
    client closes it."""
    import asyncio

    answer, refusal = answer_bytes(), refusal_bytes()

    async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                await reader.readexactly(int(length[1]) if length else 0)
                key = re.search(rb"(?i)\r\nauthorization: *Bearer +(\S+)", head)
                refused = key is not None and key[1].startswith(REFUSED.encode())
                writer.write(refusal if refused else answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client closed the connection
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(serve_connection, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(serve())


# --- The accounts ---------------------------------------------------------------------------


@dataclass
class Case:
    """One kind of call: its model, and whether it is answered (else refused unsent)."""

    name: str
    model_id: int
    answered: bool = True
    # After each call, untimed: the state the next call is to find.
    reset: Callable[[], None] | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


def prepare(environment: dict[str, str], upstream: str) -> tuple[Any, list[Case]]:
    """Migrate; the developer and the four accounts' cases, named apart from any earlier run's
    (DATABASE_URL's database may hold them)."""
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone

    from llmadmin.models import BackupKey, KeyFault, LLMModel, Provider

    call_command("migrate", verbosity=0)
    run = secrets.token_hex(3)

    def account(name: str, *keys: str) -> Provider:
        provider = Provider(
            type="openai-compat",
            name=f"Bench {name} {run}",
            slug=f"bench-{name}-{run}",
            api_key=keys[0],
            base_url=f"{upstream}/v1",
        )
        provider.full_clean()
        provider.save()
        for position, key in enumerate(keys[1:], start=1):
            backup = BackupKey(provider=provider, position=position, api_key=key)
            backup.enter_for(provider)
            backup.full_clean()
            backup.save()
        return provider

    def model_of(provider: Provider) -> int:
        return LLMModel.objects.create(
            provider=provider,
            identifier="bench-model",
            display_name=f"{provider.name} model",
            context_limit=200_000,
        ).pk

    def key(name: str) -> str:
        return f"sk-bench-{name}-{secrets.token_hex(8)}"

    floor = account("floor", key("floor"))
    pooled = account("pooled", key("pooled-1"), key("pooled-2"))
    failover = account("failover", f"{REFUSED}{secrets.token_hex(8)}", key("failover-2"))
    cooling = account("cooling", key("cooling-1"), key("cooling-2"))
    until = timezone.now() + timedelta(days=1)
    for rows in (Provider.objects.filter(pk=cooling.pk), cooling.backup_keys.all()):
        rows.update(cooling_until=until, cooling_reason=KeyFault.RATE_LIMITED)

    def ready_again() -> None:
        """The refused key 1 of the failover account tried again by the next call."""
        cleared = Provider.objects.filter(pk=failover.pk, cooling_reason=KeyFault.REJECTED)
        require(cleared.update(cooling_until=None, cooling_reason="") == 1, "no failover")

    developer = User.objects.create_user(f"bench-dev-{run}", password=secrets.token_hex())
    return developer, [
        Case("floor", model_of(floor)),
        Case("pooled", model_of(pooled)),
        Case("failover", model_of(failover), reset=ready_again),
        Case("all cooling", model_of(cooling), answered=False),
    ]


def quiet_failovers() -> None:
    """Each failover is logged as the project logs it, formatted and written: to /dev/null
    (N lines a round on the terminal would be the benchmark's own cost)."""
    handler = logging.FileHandler(os.devnull)
    handler.setFormatter(logging.root.handlers[0].formatter if logging.root.handlers else None)
    logger = logging.getLogger("llmadmin.key_pools")
    logger.handlers, logger.propagate = [handler], False


# --- The calls -------------------------------------------------------------------------------


async def rounds_run(developer: Any, cases: list[Case], calls: int, rounds: int) -> None:
    """The warm-up, the rounds (their figures in `cases`), then the queries of a few calls."""
    from asgiref.sync import sync_to_async
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chat.metered import call_admit
    from llmadmin.providers.contract import ChatInput
    from llmadmin.providers.errors import ProviderError

    hello = ChatInput(system="", messages=[{"role": "user", "content": "Hi"}])
    admit = sync_to_async(call_admit)
    # Untimed work runs as the calls' database work does: on this benchmark's main thread.
    untimed = sync_to_async(lambda work: work())

    async def call(case: Case) -> tuple[float, float]:
        """One call's wall and CPU seconds; checked, untimed."""
        wall, cpu = time.perf_counter(), time.process_time()
        admission = await admit(user=developer, model_id=case.model_id)
        outcome: str | ProviderError
        try:
            async with admission.call(chat=hello) as metered:
                async for _ in metered:
                    pass
            outcome = metered.answer
        except ProviderError as error:
            outcome = error
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if case.answered:
            require(outcome == "".join(REPLY), f"{case.name}: {outcome!r}")
        else:
            require(getattr(outcome, "retry_after", None), f"{case.name}: {outcome!r}")
        return wall, cpu

    async def reset(case: Case) -> None:
        if case.reset:
            await untimed(case.reset)

    for _ in range(WARM_CALLS):
        for case in cases:
            await call(case)
            await reset(case)
    for _ in range(rounds):
        spent = {case.name: [0.0, 0.0] for case in cases}
        for _ in range(calls):
            for case in cases:
                wall, cpu = await call(case)
                await reset(case)
                spent[case.name][0] += wall
                spent[case.name][1] += cpu
        for case in cases:
            case.wall.append(spent[case.name][0] * 1000 / calls)
            case.cpu.append(spent[case.name][1] * 1000 / calls)
    for case in cases:
        for _ in range(COUNTED_CALLS):
            captured = CaptureQueriesContext(connection)
            await untimed(captured.__enter__)
            await call(case)
            # Read on the thread whose connection ran them.
            case.statements = await untimed(partial(statements_of, captured))
            await reset(case)
            case.queries.append(len(case.statements))


def statements_of(captured: Any) -> list[str]:
    """The SQL of the queries a CaptureQueriesContext entered on this thread saw."""
    captured.__exit__(None, None, None)
    return [query["sql"] for query in captured.captured_queries]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per case and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sql", action="store_true", help="print each case's statements")
    args = parser.parse_args()
    print(load_line("start"))

    port = free_port()
    upstream = SPAWN.Process(target=serve_upstream, args=(port,), daemon=True)
    upstream.start()
    try:
        wait_for_port(port)
        with tempfile.TemporaryDirectory() as workdir:
            developer, cases = prepare(bench_environment(workdir), f"http://127.0.0.1:{port}")
            quiet_failovers()
            from asgiref.sync import async_to_sync
            from django.db import connection

            from billing.models import UsageRecord

            async_to_sync(rounds_run)(developer, cases, args.calls, args.rounds)
            vendor = connection.vendor
            recorded = {
                case.name: UsageRecord.objects.filter(model_id=case.model_id).count()
                for case in cases
            }
            connection.close()
    finally:
        upstream.terminate()
        upstream.join()
    made = WARM_CALLS + args.calls * args.rounds + COUNTED_CALLS
    for case in cases:
        require(recorded[case.name] == (made if case.answered else 0), recorded)

    print(f"{datetime.now():%Y-%m-%d %H:%M}, {vendor}, {load_line('end')}")
    print(f"{args.rounds} rounds of {args.calls} calls per case, taking turns call by call")
    print(
        "per call, median (min-max) over the rounds; its ratio to the floor of its round, and "
        "the CPU ms it spends over that floor"
    )
    for line in report(cases):
        print(line)
    if args.sql:
        for case in cases:
            print(f"\n{case.name}:")
            for statement in case.statements:
                print(f"  {statement[:160]}")


def report(cases: list[Case]) -> list[str]:
    """The table: a line a case, the first the floor."""
    floor = cases[0]
    ms, times = "{:.2f}".format, "{:.2f}x".format
    lines = [
        f"{'':12} {'wall ms':20} {'x floor':22} {'CPU ms':20} {'x floor':22} "
        f"{'CPU ms over floor':19} queries"
    ]
    for case in cases:
        over = wall_ratio = cpu_ratio = ""
        if case is not floor:
            if case.answered:  # the refusal spends less: its ratio tells how much
                over = spread([a - b for a, b in zip(case.cpu, floor.cpu, strict=True)], ms)
            wall_ratio = spread(ratios(case.wall, floor.wall), times)
            cpu_ratio = spread(ratios(case.cpu, floor.cpu), times)
        queries = (
            f"{case.queries[0]}"
            if min(case.queries) == max(case.queries)
            else spread(case.queries, "{:.0f}".format)
        )
        lines.append(
            f"{case.name:12} {spread(case.wall, ms):20} {wall_ratio:22} {spread(case.cpu, ms):20} "
            f"{cpu_ratio:22} {over:19} {queries}"
        )
    return lines


if __name__ == "__main__":
    main()
