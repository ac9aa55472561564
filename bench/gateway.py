"""Benchmark the gateway's OpenAI chat completions against the same loopback upstream reached
directly, as served by scripts/serve (gunicorn, 2 uvicorn workers).

Usage: .venv/bin/python bench/gateway.py [--rounds R] [--n N [N ...]] [--seconds S]
                                         [--chunks-per-second C] [--ramp SECONDS]

Sets up a throwaway SQLite database (or DATABASE_URL's) with the OpenAI Compatible provider
pointed at a loopback upstream (a process of its own: a stream of C deltas a second for S
seconds, as bench/chat_streams.py's, or at once one whole answer to a request not streamed),
one model, a developer and a personal access token. The same client sends the same body
(streams with `stream_options.include_usage`) straight to the upstream and through
/gateway/openai/v1/chat/completions with the token. A second upstream streams the same deltas
in Anthropic's Messages shape for an Anthropic model: the translated case. In every one of R
rounds (default 5), in turn: probes the gateway's model list idle; 10 streams of the same
OpenAI client through the gateway to each model, native and translated, each after 10 straight
to its upstream; for each N (default 10, 100, 300) N streams directly, then N through the
gateway, the same prober running under the largest N; then S seconds each of requests not
streamed at concurrency 8, directly, through the gateway, and to the floor (FLOOR_PATH: the
same request to a fixed answer served as the gateway's APIs are: Django's own cost here), then
one at a time, directly and through the gateway. Prints the load average at start and end and
every figure as its median (min-max) over the rounds, each taken within its round: streams
completed, the first-token delay the gateway adds (p50 less p50, p99 less p99), the model
list's p50 and p99 while the largest N's streams run, the server's CPU per stream; for
requests not streamed, the time the gateway adds per request (p50 less p50, p99 less p99), the
floor's and the gateway's beyond the floor, requests/s and the server's CPU per request, and
the time added one at a time; next to the targets: added first-token p50 <= 5 ms at N = 10,
all 300 streams complete with the model list's p99 < 250 ms, overhead of a request not
streamed <= 3 ms median; and the translated streams' added first-token p50 and p99 beside the
native ones', their difference within 2 ms. About 80 s per round with S = 5 (--rounds 1
--seconds 3: under a minute).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

from chat_streams import (
    ANSWER_HEAD,
    BENCH_MODEL,
    DELTA,
    DIRECT,
    EDGE,
    PROBE_PAUSE,
    SPAWN,
    Markers,
    Stream,
    answered,
    bench_model,
    chunk,
    first_deltas,
    in_ms,
    open_streams,
    post,
    provider_model,
    server_log_report,
    server_started,
    stopped,
    stream_arguments,
    upstream_started,
    whole,
)
from rounds import load_line, percentile, spread
from serving import (
    bench_environment,
    cpu_seconds,
    free_port,
    require,
    server_processes,
    wait_for_port,
)

CONCURRENCY = (10, 100, 300)
# Requests not streamed: this many clients at once, each sending its next on an answer.
WHOLE_CONCURRENCY = 8
# The same request to bench/urls.py's gateway floor: a fixed answer served as the gateway's
# APIs are, with no token, database or upstream; Django's own cost on this machine.
FLOOR_PATH = "/gateway/bench-floor"
MODEL = BENCH_MODEL
CHAT_PATH = "/gateway/openai/v1/chat/completions"
MODELS_PATH = "/gateway/openai/v1/models"
USER_AGENT = "bench-gateway/1"
# The translated case: N streams of the same OpenAI client, to an Anthropic model.
TRANSLATED_N = 10
TRANSLATED_MODEL = "claude-sonnet-4-6"
# A stream's delta, whatever its API (both upstreams' deltas and the gateway's say " tok"),
# and its end: through the gateway, straight from the Anthropic upstream.
THROUGH = Markers(delta=b'" tok"', end=b"data: [DONE]")
MESSAGES_DIRECT = Markers(delta=b'" tok"', end=b"event: message_stop")
WHOLE_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A short answer."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16},
    }
).encode()


# --- The upstreams: chat_streams' paced stream, or one whole answer -----------------------


def chat_ending(deltas: int) -> bytes:
    return (
        chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
        + chunk(
            b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d}}\n\n' % deltas
        )
        + chunk(b"data: [DONE]\n\n")
    )


def messages_event(payload: dict) -> bytes:
    """One event of Anthropic's Messages stream, as a chunk."""
    return chunk(f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode())


def messages_ending(deltas: int) -> bytes:
    delta = {"stop_reason": "end_turn", "stop_sequence": None}
    return (
        messages_event({"type": "content_block_stop", "index": 0})
        + messages_event(
            {"type": "message_delta", "delta": delta, "usage": {"output_tokens": deltas}}
        )
        + messages_event({"type": "message_stop"})
    )


@dataclass(frozen=True)
class Shape:
    """A streamed answer in one API: what comes before its deltas, each delta (the same text,
    " tok"), and its end for a count of deltas."""

    opening: bytes
    delta: bytes
    ending: Callable[[int], bytes]


CHAT_COMPLETIONS = Shape(opening=b"", delta=DELTA, ending=chat_ending)
MESSAGES = Shape(
    opening=messages_event(
        {
            "type": "message_start",
            "message": {
                "id": "msg_bench",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "bench",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        }
    )
    + messages_event(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    ),
    delta=messages_event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " tok"},
        }
    ),
    ending=messages_ending,
)


def serve_upstream(port: int, deltas: int, pause: float, shape: Shape = CHAT_COMPLETIONS) -> None:
    """The upstream's process: a streamed request is answered in `shape` with `deltas` deltas
    `pause` seconds apart, the first at once, then the usage and the end (as chat_streams'
    upstream does); one not streamed, at once with WHOLE_ANSWER, the connection then kept
    for the next request unless the request asked to close it (as providers keep them: the
    gateway's pool reuses them; the bench's own client closes each)."""
    ending = shape.ending(deltas) + b"0\r\n\r\n"
    whole_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"Connection: " % len(WHOLE_ANSWER)
    )

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                body = await reader.readexactly(int(length[1]) if length else 0)
                if json.loads(body).get("stream"):
                    break
                close = re.search(rb"(?i)\r\nconnection: *close", head)
                kept = b"close" if close else b"keep-alive"
                writer.write(whole_head + kept + b"\r\n\r\n" + WHOLE_ANSWER)
                await writer.drain()
                if close:
                    return
            writer.write(ANSWER_HEAD + shape.opening)
            started = loop.time()
            for n in range(deltas):
                # On a schedule, so that an answer lasts as long however busy the loop is.
                await asyncio.sleep(started + n * pause - loop.time())
                writer.write(shape.delta)
                await writer.drain()
            writer.write(ending)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the server closed the request early
        finally:
            writer.close()

    async def serve() -> None:
        # Hundreds of requests arrive at once: a short backlog would delay some by a second.
        server = await asyncio.start_server(answer, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    asyncio.run(serve())


# --- The gateway's model list, probed ------------------------------------------------------

Probe = tuple[float, float, int]  # sent, seconds, status


def probe_model_list(port: int, secret: str, stop: Event, samples: Connection) -> None:
    """The prober's process: GET the gateway's model list with the token, one request at a
    time, PROBE_PAUSE apart, until stopped; sends (sent, seconds, status) of each."""
    taken = []
    while not stop.is_set():
        sent = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request(
                "GET",
                MODELS_PATH,
                headers={"Authorization": f"Bearer {secret}", "User-Agent": USER_AGENT},
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
def prober(port: int, secret: str) -> Iterator[list[Probe]]:
    """Probe the gateway's model list while inside; the samples are in the list on leaving."""
    stop = SPAWN.Event()
    receiving, sending = SPAWN.Pipe(duplex=False)
    process = SPAWN.Process(target=probe_model_list, args=(port, secret, stop, sending))
    process.start()
    sending.close()  # the prober's end only: a prober that dies ends recv()
    samples: list[Probe] = []
    try:
        yield samples
    finally:
        stop.set()
        samples.extend(receiving.recv())
        process.join()


# --- Requests not streamed -----------------------------------------------------------------


async def whole_request(port: int, request: bytes) -> tuple[float, int]:
    """Send one request and read its whole answer (the connection closes after it):
    (seconds, status)."""
    sent = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        answer = await reader.read()
        status = int(answer.split(b" ", 2)[1])
    except (OSError, ValueError, IndexError):
        status = 0
    finally:
        if writer:
            writer.close()
    return time.monotonic() - sent, status


async def whole_requests(
    port: int, request: bytes, seconds: float, concurrency: int = WHOLE_CONCURRENCY
) -> list[tuple[float, int]]:
    """`concurrency` clients sending the request again on each answer for `seconds`."""
    until = time.monotonic() + seconds
    taken: list[tuple[float, int]] = []

    async def client() -> None:
        while time.monotonic() < until:
            taken.append(await whole_request(port, request))

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return taken


# --- Setup and measurement -----------------------------------------------------------------


def prepare(environment: dict[str, str], upstream_port: int, messages_port: int) -> str:
    """The bench's model (chat_streams' bench_model), an Anthropic model at the Anthropic
    upstream, a developer and their token; return its secret."""
    bench_model(environment, upstream_port)
    provider_model(
        "anthropic",
        f"http://127.0.0.1:{messages_port}",
        TRANSLATED_MODEL,
        display_name="Bench Claude",
    )
    from django.contrib.auth.models import User

    from gateway.tokens import token_mint

    _, secret = token_mint(user=User.objects.create_user("bench-dev"), name="bench")
    return secret


@dataclass(frozen=True)
class Setup:
    port: int
    upstream_port: int
    messages_port: int
    secret: str
    server_pid: int
    seconds: float
    limit: float  # a stream not ended this long after its request failed
    ramp: float  # the streams start spread over this many seconds

    def request(
        self, *, through: bool, stream: bool, translated: bool = False, floor: bool = False
    ) -> bytes:
        """The same OpenAI body both ways: to the upstream with its key, or to the gateway
        with the token; `translated`: for the Anthropic model, and straight to its upstream
        in Anthropic's shape; `floor`: to the gateway's FLOOR_PATH."""
        messages = [{"role": "user", "content": "Tell me a long story."}]
        body = {
            "model": TRANSLATED_MODEL if translated else MODEL,
            "messages": messages,
            "stream": stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        }
        if through:
            port, path, key = self.port, FLOOR_PATH if floor else CHAT_PATH, self.secret
        elif translated:
            port, path, key = self.messages_port, "/v1/messages", "sk-bench"
            body = {"model": TRANSLATED_MODEL, "max_tokens": 8192, "messages": messages}
            body["stream"] = stream
        else:
            port, path, key = self.upstream_port, "/v1/chat/completions", "sk-bench"
        headers = {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT}
        return post(port, path, json.dumps(body).encode(), headers)


@dataclass
class Figures:
    """One N's streams, round by round."""

    through: list[list[Stream]] = field(default_factory=list)
    direct: list[list[Stream]] = field(default_factory=list)
    busy_probes: list[list[Probe]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # workers' CPU seconds while streaming
    probes: list[int] = field(default_factory=list)  # model list probes while streaming


@dataclass
class WholeFigures:
    """Requests not streamed, round by round: (seconds, status) of each."""

    through: list[list[tuple[float, int]]] = field(default_factory=list)
    direct: list[list[tuple[float, int]]] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # workers' CPU seconds meanwhile
    # The same request to FLOOR_PATH, at the same concurrency.
    floor: list[list[tuple[float, int]]] = field(default_factory=list)
    # One at a time: through the gateway, and directly.
    through_one: list[list[tuple[float, int]]] = field(default_factory=list)
    direct_one: list[list[tuple[float, int]]] = field(default_factory=list)


def workers_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids[1:])


def measure_streams(setup: Setup, n: int, figures: Figures, probed: bool) -> None:
    """N streams directly, then through the gateway; with `probed`, the gateway's model list
    probed meanwhile."""
    pids = server_processes(setup.server_pid)
    direct, _ = asyncio.run(
        open_streams(
            setup.upstream_port,
            [setup.request(through=False, stream=True)] * n,
            DIRECT,
            setup.limit,
            ramp=setup.ramp,
        )
    )
    figures.direct.append(direct)
    before = workers_cpu(pids)
    with prober(setup.port, setup.secret) if probed else nullcontext([]) as busy:
        began = time.monotonic()
        # The gateway passes the upstream's events on as they are: the same markers.
        streams, _ = asyncio.run(
            open_streams(
                setup.port,
                [setup.request(through=True, stream=True)] * n,
                DIRECT,
                setup.limit,
                ramp=setup.ramp,
            )
        )
        ended = time.monotonic()
    figures.cpu.append(workers_cpu(pids) - before)
    require(server_processes(setup.server_pid) == pids, "a server worker was replaced")
    figures.through.append(streams)
    figures.probes.append(len(busy))
    # While the streams were running: from the first one's request to the last one's end.
    figures.busy_probes.append(
        [(sent, seconds, status) for sent, seconds, status in busy if began <= sent < ended]
    )


def measure_translated(setup: Setup, native: Figures, translated: Figures) -> None:
    """TRANSLATED_N streams of the same OpenAI client through the gateway to the OpenAI
    Compatible model (native) and to the Anthropic model (translated), each after the same
    number straight to that model's upstream."""
    for figures, is_translated in ((native, False), (translated, True)):
        upstream_port, markers = (
            (setup.messages_port, MESSAGES_DIRECT)
            if is_translated
            else (setup.upstream_port, DIRECT)
        )
        for port, through, kept, marks in (
            (upstream_port, False, figures.direct, markers),
            (setup.port, True, figures.through, THROUGH),
        ):
            request = setup.request(through=through, stream=True, translated=is_translated)
            streams, _ = asyncio.run(
                open_streams(port, [request] * TRANSLATED_N, marks, setup.limit, ramp=setup.ramp)
            )
            kept.append(streams)


def measure_whole(setup: Setup, figures: WholeFigures) -> None:
    """WHOLE_CONCURRENCY at a time: directly, through the gateway (with the workers' CPU),
    and the floor; then one at a time, directly and through the gateway."""
    pids = server_processes(setup.server_pid)
    direct = setup.request(through=False, stream=False)
    through = setup.request(through=True, stream=False)
    upstream, gateway = setup.upstream_port, setup.port

    def taken(port: int, request: bytes, concurrency: int = WHOLE_CONCURRENCY) -> list:
        return asyncio.run(whole_requests(port, request, setup.seconds, concurrency))

    figures.direct.append(taken(upstream, direct))
    before = workers_cpu(pids)
    figures.through.append(taken(gateway, through))
    figures.cpu.append(workers_cpu(pids) - before)
    figures.floor.append(taken(gateway, setup.request(through=True, stream=False, floor=True)))
    figures.direct_one.append(taken(upstream, direct, 1))
    figures.through_one.append(taken(gateway, through, 1))


def idle_probe_cpu(setup: Setup) -> float:
    """The workers' CPU seconds per model list request, the server otherwise idle."""
    pids = server_processes(setup.server_pid)
    before = workers_cpu(pids)
    with prober(setup.port, setup.secret) as idle:
        time.sleep(2 * EDGE)
    require(idle and all(status == 200 for *_, status in idle), "the model list failed idle")
    return (workers_cpu(pids) - before) / len(idle)


ONE = "{:.1f}".format
TWO = "{:.2f}".format


def added(
    through: list[list[float]], direct: list[list[float]], q: float
) -> tuple[list[float], list[float], list[float]]:
    """Per round, in ms: the q-th percentile through the gateway, directly, and their
    difference."""
    ours = in_ms([percentile(values, q) for values in through])
    theirs = in_ms([percentile(values, q) for values in direct])
    return ours, theirs, [a - b for a, b in zip(ours, theirs, strict=True)]


def report_streams(n: int, figures: Figures, deltas: int, probe_cpu: list[float]) -> None:
    rounds = range(len(figures.through))
    print(f"N = {n} streams: median (min-max) of {len(rounds)} rounds")
    completed = [whole(streams, deltas) for streams in figures.through]
    direct_completed = [whole(streams, deltas) for streams in figures.direct]
    print(
        f"  completed: {spread(completed, '{:.0f}'.format)} of {n} through the gateway "
        f"(target: all; each round {', '.join(map(str, completed))}), "
        f"{spread(direct_completed, '{:.0f}'.format)} directly"
    )
    failures = Counter(s.failure for streams in figures.through + figures.direct for s in streams)
    del failures[""]
    for failure, count in failures.most_common(5):
        print(f"    {count} x {failure}")
    through = [first_deltas(streams) for streams in figures.through]
    direct = [first_deltas(streams) for streams in figures.direct]
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        ours, theirs, extra = added(through, direct, q)
        target = " (target at N = 10: p50 <= 5)" if n == 10 and q == 0.5 else ""
        print(
            f"  first token {name}, ms: through the gateway {spread(ours, ONE)}, directly "
            f"{spread(theirs, ONE)}; added {spread(extra, ONE)}{target}"
        )
    probed = any(figures.probes)
    if probed:
        busy = [answered(probes) for probes in figures.busy_probes]
        failed = sum(status != 200 for probes in figures.busy_probes for *_, status in probes)
        print(
            f"  gateway model list while the streams ran, ms ({sum(map(len, busy))} requests, "
            f"{failed} failed): p50 {spread(in_ms([percentile(b, 0.5) for b in busy]), ONE)}, "
            f"p99 {spread(in_ms([percentile(b, 0.99) for b in busy]), ONE)}"
            + (" (target at N = 300: p99 < 250, all streams complete)" if n == 300 else "")
        )
    # The prober's requests meanwhile cost what they cost idle, in this estimate.
    per_stream = [(figures.cpu[r] - figures.probes[r] * probe_cpu[r]) / n * 1000 for r in rounds]
    print(
        "  server CPU per stream (workers"
        + (", less the model list probes at their idle cost" if probed else "")
        + f"): {spread(per_stream, ONE)} ms"
    )


def report_translated(native: Figures, translated: Figures, deltas: int) -> None:
    rounds = len(native.through)
    print(
        f"N = {TRANSLATED_N} streams of the same OpenAI client through the gateway: native (the "
        f"OpenAI Compatible upstream) and translated (the Anthropic upstream, the same {deltas} "
        f"deltas); added = through the gateway less straight to that upstream; median (min-max) "
        f"of {rounds} rounds"
    )
    for name, figures in (("native", native), ("translated", translated)):
        completed = [whole(streams, deltas) for streams in figures.through]
        print(f"  completed {name}: {spread(completed, '{:.0f}'.format)} of {TRANSLATED_N}")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        ours = [
            added(
                [first_deltas(s) for s in figures.through],
                [first_deltas(s) for s in figures.direct],
                q,
            )[2]
            for figures in (native, translated)
        ]
        difference = [b - a for a, b in zip(*ours, strict=True)]
        print(
            f"  added first token {name}, ms: native {spread(ours[0], ONE)}, translated "
            f"{spread(ours[1], ONE)}; translated less native {spread(difference, ONE)}"
            + (" (target: <= 2)" if q == 0.5 else "")
        )


def report_whole(figures: WholeFigures, seconds: float) -> None:
    rounds = range(len(figures.through))
    print(
        f"Requests not streamed, {WHOLE_CONCURRENCY} at a time for {seconds:g} s: median "
        f"(min-max) of {len(rounds)} rounds"
    )
    every = [
        figures.through,
        figures.direct,
        figures.floor,
        figures.through_one,
        figures.direct_one,
    ]
    failed = [sum(got != 200 for _, got in taken) for each in every for taken in each]
    print(f"  failed: {sum(failed)}")

    def answers(rounds_taken: list[list[tuple[float, int]]]) -> list[list[float]]:
        return [[s for s, got in taken if got == 200] for taken in rounds_taken]

    through, direct = answers(figures.through), answers(figures.direct)
    floor = answers(figures.floor)
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        ours, theirs, extra = added(through, direct, q)
        target = " (target: p50 <= 3)" if q == 0.5 else ""
        print(
            f"  time per request {name}, ms: through the gateway {spread(ours, TWO)}, directly "
            f"{spread(theirs, TWO)}; added {spread(extra, TWO)}{target}"
        )
    floors, _, floor_added = added(floor, direct, 0.5)
    _, _, beyond = added(through, floor, 0.5)
    print(
        f"  the floor ({FLOOR_PATH}: the same request, a fixed answer with no token, database "
        f"or upstream) p50, ms: {spread(floors, TWO)}; added {spread(floor_added, TWO)}; the "
        f"gateway's beyond it {spread(beyond, TWO)}"
    )
    print(
        f"  requests/s: through the gateway {spread([len(t) / seconds for t in through])}, "
        f"directly {spread([len(d) / seconds for d in direct])}, the floor "
        f"{spread([len(f) / seconds for f in floor])}"
    )
    per_request = [cpu / max(1, len(t)) * 1000 for cpu, t in zip(figures.cpu, through, strict=True)]
    print(f"  server CPU per request (workers): {spread(per_request, TWO)} ms")
    ours, theirs, extra = added(answers(figures.through_one), answers(figures.direct_one), 0.5)
    print(
        f"  one at a time, time per request p50, ms: through the gateway {spread(ours, TWO)}, "
        f"directly {spread(theirs, TWO)}; added {spread(extra, TWO)}"
    )


def main() -> None:
    args = stream_arguments(
        seconds=5,
        n_help="streams at once, in turn",
        seconds_help="that every stream lasts, and of requests not streamed per round and way",
    )
    print(load_line("start"))
    deltas = round(args.chunks_per_second * args.seconds)

    with tempfile.TemporaryDirectory() as workdir:
        upstream_port, messages_port, port = free_port(), free_port(), free_port()
        pause = 1 / args.chunks_per_second
        upstream = upstream_started(serve_upstream, upstream_port, deltas, pause)
        messages_upstream = upstream_started(
            partial(serve_upstream, shape=MESSAGES), messages_port, deltas, pause
        )
        environment = bench_environment(workdir)
        secret = prepare(environment, upstream_port, messages_port)
        log_path = Path(workdir) / "server.log"
        server = server_started(port, environment, log_path)
        setup = Setup(
            port=port,
            upstream_port=upstream_port,
            messages_port=messages_port,
            secret=secret,
            server_pid=server.pid,
            seconds=args.seconds,
            limit=args.ramp + args.seconds + 60,
            ramp=args.ramp,
        )
        figures = {n: Figures() for n in args.n}
        native, translated = Figures(), Figures()
        whole_figures = WholeFigures()
        probe_cpu = []
        try:
            for waited in (upstream_port, messages_port, port):
                wait_for_port(waited)
            # Warm both workers (first imports, the pool to the upstream) before measuring:
            # requests not streamed, and streams left at their first delta.
            warm = asyncio.run(whole_requests(port, setup.request(through=True, stream=False), 1))
            require(
                all(status == 200 for _, status in warm),
                f"the gateway answered {Counter(status for _, status in warm)}",
            )
            warm_requests = [
                setup.request(through=True, stream=True, translated=translated)
                for translated in (False, True)
            ]
            warm_streams, _ = asyncio.run(
                open_streams(port, warm_requests * 10, THROUGH, setup.limit, whole=False)
            )
            require(
                all(s.first_delta for s in warm_streams),
                [s.failure for s in warm_streams if s.failure],
            )
            for _ in range(args.rounds):
                probe_cpu.append(idle_probe_cpu(setup))
                measure_translated(setup, native, translated)
                for n in args.n:
                    # The model list is probed under the most streams only: there is its
                    # target, and at fewer streams its requests would cost more CPU than the
                    # streams, which the estimate per stream could not take out.
                    measure_streams(setup, n, figures[n], probed=n == max(args.n))
                measure_whole(setup, whole_figures)
        finally:
            stopped(server, upstream, messages_upstream)
        log_lines = log_path.read_text(errors="replace").splitlines()

    print(
        f"The gateway's chat completions through gunicorn (2 uvicorn workers) against the "
        f"same loopback upstream directly: streams of {deltas} deltas over {args.seconds:g} s, "
        f"{args.rounds} rounds; each N's "
        + (f"streams start over {args.ramp:g} s" if args.ramp else "streams start at once")
    )
    for n in args.n:
        report_streams(n, figures[n], deltas, probe_cpu)
    report_translated(native, translated, deltas)
    report_whole(whole_figures, args.seconds)
    server_log_report(log_lines)
    print(load_line("end"))


if __name__ == "__main__":
    main()
