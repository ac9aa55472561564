"""Benchmark chat answers streaming at once through the server, as served by scripts/serve
(gunicorn, 2 uvicorn workers), from a loopback upstream paced like a model.

Usage: .venv/bin/python bench/chat_streams.py [--rounds R] [--n N [N ...]] [--seconds S]
                                              [--chunks-per-second C] [--ramp SECONDS]

Sets up a throwaway SQLite database (or DATABASE_URL's) with the OpenAI Compatible provider
pointed at a loopback upstream (a process of its own) that answers every request with C deltas
a second for S seconds, one model and a developer per stream. In every one of R rounds
(default 5), for each N in turn (default 10, 100 and 300; --n 100 300 500 700 to find the
knee): probes the model list idle, opens N streams straight to the upstream, then N chat
streams through the server while the same prober runs; the streams start spread evenly over
the first second (--ramp; 0 sends them all at once). Prints the load average at start and end
and, for each N, every figure as its median (min-max) over the rounds, each taken within its
round: streams completed, the first-token delay the server adds over the upstream (p50 less
p50, p99 less p99), the model list's p50 and p99 while all N streams are open against idle
and their ratio (and while they open, for information), the server's memory per open stream,
its workers' CPU per stream and the cores each process used, next to the targets: all streams
complete, the model list's p99 during streams <= 5x idle and < 250 ms, added first-token
delay <= 20 ms at N = 10. About 30 s per N and round: 7.5 minutes by default (--rounds 1
--seconds 3: under a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from rounds import load_line, percentile, ratios, spread
from serving import (
    ROOT,
    bench_environment,
    cpu_seconds,
    free_port,
    require,
    server_command,
    server_processes,
    wait_for_port,
)

CONCURRENCY = (10, 100, 300)
# Children start as fresh interpreters: the upstream and the prober never hold Django.
SPAWN = multiprocessing.get_context("spawn")
# The one model every stream calls.
BENCH_MODEL = "bench-model"
PROBE_PAUSE = 0.02
# Probes in a run's first and last second are left out: the streams are opening or ending.
EDGE = 1.0
TRACEBACK_LINES = ("Traceback (most recent call last)", "During handling of", "The above exception")


# --- The upstream: OpenAI's chat completions stream, paced ---------------------------------


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked HTTP body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


ANSWER_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n"
)
DELTA = chunk(
    b'data: {"choices":[{"index":0,"delta":{"content":" tok"},"finish_reason":null}]}\n\n'
)


def serve_upstream(port: int, deltas: int, pause: float) -> None:
    """The upstream's process: answers every request with `deltas` deltas `pause` seconds
    apart, the first at once, then the answer's end, and closes the connection."""
    ending = (
        chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
        + chunk(
            b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d}}\n\n' % deltas
        )
        + chunk(b"data: [DONE]\n\n")
        + b"0\r\n\r\n"
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length[1]) if length else 0)
            writer.write(ANSWER_HEAD)
            started = loop.time()
            for n in range(deltas):
                # On a schedule, so that an answer lasts as long however busy the loop is.
                await asyncio.sleep(started + n * pause - loop.time())
                writer.write(DELTA)
                await writer.drain()
            writer.write(ending)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the server closed the request early (the warm-up's clients leave)
        finally:
            writer.close()

    async def serve() -> None:
        # Hundreds of requests arrive at once: a short backlog would delay some by a second.
        server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    asyncio.run(serve())


# --- The load generator: raw HTTP/1.1 streams on one event loop ----------------------------


@dataclass
class Stream:
    """What one stream received."""

    first_delta: float | None = None  # seconds from sending the request
    deltas: int = 0
    ended: bool = False
    failure: str = ""


@dataclass(frozen=True)
class Markers:
    """How to tell a stream's events apart."""

    delta: bytes
    end: bytes


THROUGH_SERVER = Markers(delta=b"event: delta\n", end=b"event: done\n")
DIRECT = Markers(delta=b'"content":', end=b"data: [DONE]")


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def body_of(reader: asyncio.StreamReader, head: bytes) -> AsyncIterator[bytes]:
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        while size := int((await reader.readline()).split(b";")[0], 16):
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        while data := await reader.read(65536):
            yield data


async def stream(
    port: int,
    request: bytes,
    markers: Markers,
    limit: float,
    opened: Callable[[], None],
    whole: bool = True,
    delay: float = 0,
) -> Stream:
    """After `delay` seconds, send the request and read its events; `opened` is called at the
    first delta (or the failure before it). Without `whole`, leaves at the first delta."""
    result, waiting = Stream(), True
    await asyncio.sleep(delay)
    sent = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1].decode()
            if status != "200":
                result.failure = f"HTTP {status}: {(await reader.read(200))!r}"
                return result
            rest = b""
            async for data in body_of(reader, head):
                *events, rest = (rest + data).split(b"\n\n")
                for event in events:
                    if markers.delta in event:
                        result.deltas += 1
                        if waiting:
                            result.first_delta = time.monotonic() - sent
                            waiting = False
                            opened()
                            if not whole:
                                return result
                    elif markers.end in event:
                        result.ended = True
                        return result
                    elif event.startswith(b"event: error"):
                        result.failure = event.decode()[:300]
            result.failure = result.failure or "the stream ended without its end event"
    except TimeoutError:
        result.failure = f"no end after {limit:g} s"
    except (OSError, ValueError, asyncio.IncompleteReadError) as error:
        result.failure = f"{type(error).__name__}: {error}"[:300]
    finally:
        if waiting:
            opened()
        if writer:
            writer.close()
    return result


async def open_streams(
    port: int,
    requests: list[bytes],
    markers: Markers,
    limit: float,
    when_open: Callable[[], object] = lambda: None,
    whole: bool = True,
    ramp: float = 0,
) -> tuple[list[Stream], object]:
    """Send the requests spread evenly over `ramp` seconds (0: all at once); each stream's
    result, and what `when_open` returned once every stream had its first delta."""
    left = len(requests)
    all_open = asyncio.Event()

    def opened() -> None:
        nonlocal left
        left -= 1
        if not left:
            all_open.set()

    tasks = [
        asyncio.create_task(
            stream(port, request, markers, limit, opened, whole, ramp * index / len(requests))
        )
        for index, request in enumerate(requests)
    ]
    await all_open.wait()
    taken = when_open()
    return list(await asyncio.gather(*tasks)), taken


# --- The model list's prober ---------------------------------------------------------------


def probe_model_list(port: int, cookie: str, stop: Event, samples: Connection) -> None:
    """The prober's process: GET the model list as one developer, one request at a time,
    PROBE_PAUSE apart, until stopped; sends (sent, seconds, status) of each."""
    taken = []
    while not stop.is_set():
        sent = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(
                "GET",
                "/api/v1/models/",
                headers={"Cookie": f"sessionid={cookie}", "Accept": "application/json"},
            )
            response = connection.getresponse()
            response.read()
            connection.close()
            status = response.status
        except OSError:
            status = 0
        taken.append((sent, time.monotonic() - sent, status))
        stop.wait(PROBE_PAUSE)
    samples.send(taken)


@contextmanager
def prober(port: int, cookie: str) -> Iterator[list[tuple[float, float, int]]]:
    """Probe the model list while inside; the samples are in the list on leaving."""
    stop = SPAWN.Event()
    receiving, sending = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(target=probe_model_list, args=(port, cookie, stop, sending))
    process.start()
    sending.close()  # the prober's end only: a prober that dies ends recv()
    samples: list[tuple[float, float, int]] = []
    try:
        yield samples
    finally:
        stop.set()
        samples.extend(receiving.recv())
        process.join()


# --- The server's processes ----------------------------------------------------------------


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# --- Setup and measurement -----------------------------------------------------------------


def bench_model(environment: dict[str, str], upstream_port: int) -> Any:
    """Set Django up in this process, migrate, and point the OpenAI Compatible provider at the
    upstream with one model (compression off: no summary after an answer); the model."""
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return provider_model(
        "openai-compat",
        f"http://127.0.0.1:{upstream_port}/v1",
        BENCH_MODEL,
        display_name="Bench model",
        is_default=True,
        compression_threshold=100,
    )


def provider_model(provider_type: str, base_url: str, identifier: str, **fields: Any) -> Any:
    """The provider of this type (migrate made the row of every type) enabled at `base_url`,
    and a model of it; Django set up (bench_model)."""
    from llmadmin.models import LLMModel, Provider

    provider = Provider.objects.get(type=provider_type)
    provider.api_key, provider.base_url = "sk-bench", base_url
    provider.enabled = True
    provider.full_clean()
    provider.save()
    model = LLMModel(provider=provider, identifier=identifier, context_limit=200_000, **fields)
    model.full_clean()
    model.save()
    return model


def prepare(
    environment: dict[str, str], upstream_port: int, developers: int
) -> tuple[int, list[str]]:
    """The bench's model (bench_model), and its developers; return the model's id and their
    session cookies."""
    model = bench_model(environment, upstream_port)
    from django.contrib.auth.models import User
    from django.test import Client

    cookies = []
    for n in range(developers):
        client = Client()
        client.force_login(User.objects.create_user(f"bench-dev-{n:03d}"))
        cookies.append(client.cookies["sessionid"].value)
    response = client.get("/api/v1/models/")
    require(response.status_code == 200, response.content[:200])
    listed = [item["id"] for group in response.json()["groups"] for item in group["models"]]
    require(listed == [model.pk], f"the model list shows {listed}, not [{model.pk}]")
    return model.pk, cookies


@dataclass(frozen=True)
class Setup:
    port: int
    upstream_port: int
    chat_requests: list[bytes]
    direct_request: bytes
    cookie: str  # the prober's
    server_pid: int
    upstream_pid: int
    seconds: float
    limit: float  # a stream not ended this long after its request failed
    ramp: float  # the streams start spread over this many seconds


Probe = tuple[float, float, int]  # sent, seconds, status


@dataclass
class Figures:
    """One N's measurements, round by round."""

    through_server: list[list[Stream]] = field(default_factory=list)
    direct: list[list[Stream]] = field(default_factory=list)
    idle_probes: list[list[Probe]] = field(default_factory=list)
    busy_probes: list[list[Probe]] = field(default_factory=list)
    opening_probes: list[list[Probe]] = field(default_factory=list)
    memory: list[tuple[int, int]] = field(default_factory=list)  # RSS KiB idle, all N open
    cpu: list[dict[str, float]] = field(default_factory=list)  # CPU seconds while streaming
    streaming: list[float] = field(default_factory=list)  # seconds the N streams took
    probe_cpu: list[float] = field(default_factory=list)  # workers' CPU seconds per idle probe
    streaming_probes: list[int] = field(default_factory=list)  # probes while streaming


def cpu_by_process(setup: Setup, pids: list[int]) -> dict[str, float]:
    names = ["master", *(f"worker {n}" for n in range(1, len(pids)))]
    seconds = {name: cpu_seconds(pid) for name, pid in zip(names, pids, strict=True)}
    seconds["upstream"] = cpu_seconds(setup.upstream_pid)
    seconds["load generator"] = time.process_time()
    return seconds


def workers_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids[1:])


def measure(setup: Setup, n: int, figures: Figures) -> None:
    pids = server_processes(setup.server_pid)
    before = workers_cpu(pids)
    with prober(setup.port, setup.cookie) as idle:
        time.sleep(setup.seconds - 2 * EDGE)
    figures.idle_probes.append(idle)
    figures.probe_cpu.append((workers_cpu(pids) - before) / max(1, len(idle)))
    direct, _ = asyncio.run(
        open_streams(
            setup.upstream_port, [setup.direct_request] * n, DIRECT, setup.limit, ramp=setup.ramp
        )
    )
    figures.direct.append(direct)

    idle_rss, cpu_before = rss_kib(pids), cpu_by_process(setup, pids)
    with prober(setup.port, setup.cookie) as busy:
        began = time.monotonic()
        streams, (open_rss, all_open) = asyncio.run(
            open_streams(
                setup.port,
                setup.chat_requests[:n],
                THROUGH_SERVER,
                setup.limit,
                when_open=lambda: (rss_kib(pids), time.monotonic()),
                ramp=setup.ramp,
            )
        )
        ended = time.monotonic()
    require(server_processes(setup.server_pid) == pids, "a server worker was replaced")
    cpu_after = cpu_by_process(setup, pids)
    figures.through_server.append(streams)
    # While all N are open: from the last stream's first delta to the first stream's end.
    figures.busy_probes.append(
        [
            (sent, seconds, status)
            for sent, seconds, status in busy
            if all_open <= sent and sent + seconds <= began + setup.seconds
        ]
    )
    figures.opening_probes.append(
        [(sent, seconds, status) for sent, seconds, status in busy if sent < all_open]
    )
    figures.memory.append((idle_rss, open_rss))
    figures.cpu.append({name: cpu_after[name] - cpu_before[name] for name in cpu_before})
    figures.streaming.append(ended - began)
    figures.streaming_probes.append(len(busy))


def whole(streams: list[Stream], deltas: int) -> int:
    return sum(s.ended and s.deltas == deltas for s in streams)


def answered(probes: list[Probe]) -> list[float]:
    return [seconds for _, seconds, status in probes if status == 200]


def first_deltas(streams: list[Stream]) -> list[float]:
    return [s.first_delta for s in streams if s.first_delta is not None]


def in_ms(seconds: list[float]) -> list[float]:
    return [second * 1000 for second in seconds]


def report(n: int, figures: Figures, deltas: int) -> None:
    """Each figure per round, then its median (min-max) over the rounds."""
    rounds = range(len(figures.through_server))
    one = "{:.1f}".format
    print(f"N = {n}: median (min-max) of {len(rounds)} rounds")
    completed = [whole(streams, deltas) for streams in figures.through_server]
    direct_completed = [whole(streams, deltas) for streams in figures.direct]
    print(
        f"  completed: {spread(completed, '{:.0f}'.format)} of {n} through the server (target: "
        f"all; each round {', '.join(map(str, completed))}), "
        f"{spread(direct_completed, '{:.0f}'.format)} directly"
    )
    failures = Counter(
        s.failure for streams in figures.through_server + figures.direct for s in streams
    )
    del failures[""]
    for failure, count in failures.most_common(5):
        print(f"    {count} x {failure}")
    server = [first_deltas(figures.through_server[r]) for r in rounds]
    direct = [first_deltas(figures.direct[r]) for r in rounds]
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        through = in_ms([percentile(server[r], q) for r in rounds])
        straight = in_ms([percentile(direct[r], q) for r in rounds])
        added = [a - b for a, b in zip(through, straight, strict=True)]
        target = " (target at N = 10: p50 <= 20)" if n == 10 and q == 0.5 else ""
        print(
            f"  first delta {name}, ms: through the server {spread(through, one)}, directly "
            f"{spread(straight, one)}; added {spread(added, one)}{target}"
        )
    idle = [answered(figures.idle_probes[r]) for r in rounds]
    busy = [answered(figures.busy_probes[r]) for r in rounds]
    opening = [answered(figures.opening_probes[r]) for r in rounds]
    failed = sum(
        status != 200
        for probes in figures.idle_probes + figures.busy_probes + figures.opening_probes
        for _, _, status in probes
    )
    print(
        f"  model list, ms ({sum(map(len, idle))} requests idle, {sum(map(len, busy))} while "
        f"all N were open, {sum(map(len, opening))} while they opened, {failed} failed):"
    )
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        idle_q = [percentile(idle[r], q) for r in rounds]
        busy_q = [percentile(busy[r], q) for r in rounds]
        target = " (target: p99 <= 5x idle and < 250 ms)" if q == 0.99 else ""
        print(
            f"    {name}: idle {spread(in_ms(idle_q), one)}, all N open "
            f"{spread(in_ms(busy_q), one)}, ratio {spread(ratios(busy_q, idle_q))}x{target}; "
            f"while they opened {spread(in_ms([percentile(o, q) for o in opening]), one)}"
        )
    memory_per_stream = [(opened - before) / n for before, opened in figures.memory]
    print(
        f"  memory per open stream: {spread(memory_per_stream, '{:.0f}'.format)} KiB (RSS of "
        f"master and workers with all N open {spread([o / 1024 for _, o in figures.memory])} MiB)"
    )
    # The prober's requests during the streams cost what they cost idle, in this estimate.
    cpu_per_stream = [
        (
            sum(seconds for name, seconds in figures.cpu[r].items() if name.startswith("worker"))
            - figures.streaming_probes[r] * figures.probe_cpu[r]
        )
        / n
        for r in rounds
    ]
    print(
        f"  server CPU per stream (workers, less the model list probes at their idle cost): "
        f"{spread(in_ms(cpu_per_stream), one)} ms"
    )
    cores = {
        name: [cpu[name] / took for cpu, took in zip(figures.cpu, figures.streaming, strict=True)]
        for name in figures.cpu[0]
    }
    print(
        "  CPU while streaming, cores: "
        + ", ".join(f"{name} {spread(used, '{:.2f}'.format)}" for name, used in cores.items())
    )


# --- What this bench and bench/gateway.py share -------------------------------------------


def stream_arguments(*, seconds: float, n_help: str, seconds_help: str) -> argparse.Namespace:
    """The command line of a streams bench (the calling script's docstring says it)."""
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, nargs="+", default=CONCURRENCY, help=n_help)
    parser.add_argument("--chunks-per-second", type=float, default=20, help="of every stream")
    parser.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    parser.add_argument(
        "--ramp",
        type=float,
        default=EDGE,
        help="seconds over which the streams start, evenly spread (0: all at once)",
    )
    args = parser.parse_args()
    require(args.seconds > 2 * EDGE, f"streams must last more than {2 * EDGE:g} s")
    # Every stream holds two sockets in this process, and two in the server.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return args


def upstream_started(
    target: Callable[..., None], port: int, deltas: int, pause: float
) -> multiprocessing.process.BaseProcess:
    """The upstream in a process of its own; daemonic: it ends with this one, however."""
    upstream = SPAWN.Process(target=target, args=(port, deltas, pause), daemon=True)
    upstream.start()
    return upstream


def server_started(port: int, environment: dict[str, str], log_path: Path) -> subprocess.Popen:
    """The server as scripts/serve runs it (2 workers), its output in `log_path`."""
    with log_path.open("wb") as log:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            server_command(port, 2),
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stopped(server: subprocess.Popen, *upstreams: multiprocessing.process.BaseProcess) -> None:
    server.terminate()
    server.wait(timeout=10)
    for upstream in upstreams:
        upstream.terminate()
        upstream.join()


def server_log_report(log_lines: list[str]) -> None:
    """The server's log messages and exceptions, without the frames and links of tracebacks."""
    headlines = [
        line
        for line in log_lines
        if line.strip() and not line[0].isspace() and not line.startswith(TRACEBACK_LINES)
    ]
    print(f"server log: {len(log_lines)} lines")
    for line, count in Counter(headlines).most_common(10):
        print(f"  {count} x {line[:200]}")


def main() -> None:
    args = stream_arguments(
        seconds=10,
        n_help="streams at once, in turn each round (to find the knee: --n 100 300 500 700)",
        seconds_help="that every answer lasts",
    )
    print(load_line("start"))
    deltas = round(args.chunks_per_second * args.seconds)

    with tempfile.TemporaryDirectory() as workdir:
        upstream_port, port = free_port(), free_port()
        upstream = upstream_started(
            serve_upstream, upstream_port, deltas, 1 / args.chunks_per_second
        )
        environment = bench_environment(workdir)
        model_id, cookies = prepare(environment, upstream_port, max(args.n))
        # Django takes any 32-character token whose cookie and header agree.
        csrf = secrets.token_hex(16)
        chat_body = json.dumps({"model_id": model_id, "message": "Tell me a long story."})
        direct_body = json.dumps(
            {
                "model": BENCH_MODEL,
                "messages": [{"role": "user", "content": "Tell me a long story."}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        log_path = Path(workdir) / "server.log"
        server = server_started(port, environment, log_path)
        setup = Setup(
            port=port,
            upstream_port=upstream_port,
            chat_requests=[
                post(
                    port,
                    "/api/v1/chat/",
                    chat_body.encode(),
                    {
                        "Cookie": f"sessionid={cookie}; csrftoken={csrf}",
                        "X-CSRFToken": csrf,
                        "Accept": "text/event-stream",
                    },
                )
                for cookie in cookies
            ],
            direct_request=post(
                upstream_port,
                "/v1/chat/completions",
                direct_body.encode(),
                {"Authorization": "Bearer sk-bench", "Accept": "text/event-stream"},
            ),
            cookie=cookies[0],
            server_pid=server.pid,
            upstream_pid=upstream.pid,
            seconds=args.seconds,
            limit=args.ramp + args.seconds + 60,
            ramp=args.ramp,
        )
        figures = {n: Figures() for n in args.n}
        try:
            wait_for_port(upstream_port)
            wait_for_port(port)
            # Warm both workers (first imports, the pool to the upstream) before measuring:
            # model list requests, and streams left at their first delta.
            with prober(port, cookies[0]):
                time.sleep(EDGE)
            warm, _ = asyncio.run(
                open_streams(
                    port, setup.chat_requests[:20], THROUGH_SERVER, setup.limit, whole=False
                )
            )
            require(all(s.first_delta for s in warm), [s.failure for s in warm if s.failure])
            for _ in range(args.rounds):
                for n in args.n:
                    measure(setup, n, figures[n])
        finally:
            stopped(server, upstream)
        log_lines = log_path.read_text(errors="replace").splitlines()

    print(
        f"Chat streams through gunicorn (2 uvicorn workers): answers of {deltas} deltas over "
        f"{args.seconds:g} s from a loopback upstream, {args.rounds} rounds; each N's "
        + (f"streams start over {args.ramp:g} s" if args.ramp else "streams start at once")
    )
    for n in args.n:
        report(n, figures[n], deltas)
    server_log_report(log_lines)
    print(load_line("end"))


if __name__ == "__main__":
    main()
