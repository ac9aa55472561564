"""Benchmark GET /api/v1/models/ against a floor, both served as in production on 127.0.0.1.

Usage: .venv/bin/python bench/api_models.py [--requests N] [--concurrency C] [--rounds R]
                                             [--workers W] [--large]

Sets up a throwaway SQLite database (or DATABASE_URL's) with 8 providers x 25 models (--large:
8 x 1,250 = 10,000 models and 50 groups, half the models restricted to some of them, and 50
developers, each in 5 groups and named on one model of their own: 50 access scopes), serves
it as scripts/serve does (gunicorn, 2 uvicorn workers), and sends the same bounded load to
the model list and to a floor endpoint that returns the same bytes pre-rendered through the
same stack, each request as one of the developers in turn. Each of R rounds (default 5) loads
the floor, then the model list, then (--large) the model list again while a model is enabled
and disabled every 200 ms from another process, then warms the list again: every round's list
is measured with each scope's list cached, as the floor's always is. Prints the load average
at start and end, the queries each request runs, and for each figure its median (min-max)
over the rounds: requests/s, the server's CPU per request (its workers' CPU time from /proc,
before and after each load), the ratio of the list's requests/s to the floor's taken per
round (target >= 0.9), and with --large the slowest request, p99 and median while the model
changes (target: slowest < 250 ms). About 1 minute, 2 with --large.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from rounds import load_line, percentile, ratios, spread
from serving import (
    ROOT,
    bench_environment,
    cpu_seconds,
    free_port,
    providers_with_models,
    require,
    server_command,
    server_processes,
    wait_for_port,
)

PROVIDERS = 8


# Requests warming a load's endpoint in every worker: each developer's (each scope's) list
# 8 times, answered by either of two workers.
WARM_UP = 400


def prepare(
    environment: dict[str, str], models_per_provider: int, groups: int, developers: int
) -> tuple[list[str], dict[str, int]]:
    """Migrate and fill the database; return the developers' session cookies and queries per
    request."""
    os.environ.update(environment)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from llmadmin.models import LLMModel

    call_command("migrate", verbosity=0)
    # With groups, every other model is kept to some of them.
    providers_with_models(
        models_per_provider, base_url="http://proxy:1/v1", restricted=bool(groups)
    )
    people = [
        User.objects.create_user(f"bench-dev-{n:02d}", password=secrets.token_hex())
        for n in range(developers)
    ]
    if groups:
        made = Group.objects.bulk_create(Group(name=f"team-{n:02d}") for n in range(groups))
        restricted = list(LLMModel.objects.filter(restricted=True).values_list("pk", flat=True))
        through = LLMModel.allowed_groups.through
        through.objects.bulk_create(
            through(llmmodel_id=model_id, group_id=made[model_id % groups].pk)
            for model_id in restricted
        )
        named = LLMModel.allowed_users.through
        named.objects.bulk_create(
            named(llmmodel_id=restricted[n], user_id=person.pk) for n, person in enumerate(people)
        )
        for n, person in enumerate(people):
            person.groups.add(*made[n % 10 : n % 10 + 5])

    cookies = []
    for person in people:
        client = Client()
        client.force_login(person)
        cookies.append(client.cookies["sessionid"].value)
    client = Client()
    client.force_login(people[0])
    queries = {}
    # The floor renders its bytes on its first request: measure its second.
    for label, path in [
        ("cold", "/api/v1/models/"),
        ("cached", "/api/v1/models/"),
        ("floor", "/api/bench-floor/"),
        ("floor", "/api/bench-floor/"),
    ]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        require(response.status_code == 200, response.content[:200])
        queries[label] = len(captured)
    return cookies, queries


def load(
    port: int, path: str, cookies: list[str], total: int, concurrency: int
) -> tuple[float, bytes, list[float]]:
    """Send `total` GETs from `concurrency` threads, as each developer in turn; return
    requests/s, the first developer's body and every request's seconds."""
    per_thread = total // concurrency

    def worker(thread: int) -> tuple[bytes, list[float]]:
        body, first, times = b"", b"", []
        for n in range(per_thread):
            cookie = cookies[(thread * per_thread + n) % len(cookies)]
            headers = {"Cookie": f"sessionid={cookie}", "Accept": "application/json"}
            sent = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            times.append(time.perf_counter() - sent)
            require(response.status == 200, (path, response.status))
            connection.close()
            if cookie == cookies[0]:
                first = body
        return first if per_thread else body, times

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(worker, range(concurrency)))
    rate = per_thread * concurrency / (time.perf_counter() - started)
    first = next((body for body, _ in results if body), b"")
    return rate, first, [t for _, times in results for t in times]


def toggle_a_model(stop: threading.Event) -> int:
    """Enable and disable a model every 200 ms until stopped, as an admin would; the count.
    Runs in a thread of its own each round: it closes that thread's database connection."""
    from django.db import connection

    from llmadmin.models import LLMModel
    from llmadmin.services import models_set_enabled

    model = LLMModel.objects.filter(is_default=False).order_by("pk").first()
    changes = 0
    while not stop.wait(0.2):
        changes += models_set_enabled(
            models=LLMModel.objects.filter(pk=model.pk), enabled=changes % 2 == 1
        )
    models_set_enabled(models=LLMModel.objects.filter(pk=model.pk), enabled=True)
    connection.close()
    return changes


@dataclass
class Rounds:
    """Each figure, round by round."""

    rate: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    changes: list[int] = field(default_factory=list)
    slowest: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    median: list[float] = field(default_factory=list)

    def round_text(self) -> str:
        """The last round's figures, printed as it ends (a long run shows its progress)."""
        text = ", ".join(
            f"{name} {rates[-1]:.0f} requests/s ({self.cpu_ms[name][-1]:.2f} ms CPU each)"
            for name, rates in self.rate.items()
        )
        if self.slowest:
            text += f"; slowest while changing {self.slowest[-1]:.0f} ms"
        return text


def workers_cpu(server_pid: int) -> float:
    return sum(cpu_seconds(pid) for pid in server_processes(server_pid)[1:])


def measured_load(
    port: int, server_pid: int, path: str, cookies: list[str], args: argparse.Namespace
) -> tuple[float, bytes, list[float], float]:
    """`load`, and the CPU the server's workers used per request (ms)."""
    before = workers_cpu(server_pid)
    rate, body, times = load(port, path, cookies, args.requests, args.concurrency)
    return rate, body, times, (workers_cpu(server_pid) - before) * 1000 / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint and round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--large", action="store_true", help="10,000 models and 50 groups")
    args = parser.parse_args()
    models_per_provider, groups, developers = (1250, 50, 50) if args.large else (25, 0, 1)
    print(load_line("start"))

    with tempfile.TemporaryDirectory() as workdir:
        environment = bench_environment(workdir)
        cookies, queries = prepare(environment, models_per_provider, groups, developers)
        port = free_port()
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            server_command(port, args.workers),
            cwd=ROOT,
            env={**os.environ, **environment},
        )
        figures = Rounds()
        try:
            wait_for_port(port)
            # Warm both endpoints in every worker before measuring.
            load(port, "/api/v1/models/", cookies, WARM_UP, args.concurrency)
            _, floor_body, _ = load(port, "/api/bench-floor/", cookies, WARM_UP, args.concurrency)
            for _ in range(args.rounds):
                for name, path in (("floor", "/api/bench-floor/"), ("models", "/api/v1/models/")):
                    rate, body, _, cpu_ms = measured_load(port, server.pid, path, cookies, args)
                    figures.rate[name].append(rate)
                    figures.cpu_ms[name].append(cpu_ms)
                    if name == "models":
                        require(body == floor_body, "the floor must serve the same bytes")
                if args.large:
                    stop = threading.Event()
                    with ThreadPoolExecutor(1) as changer:
                        changes = changer.submit(toggle_a_model, stop)
                        try:
                            rate, _, times, cpu_ms = measured_load(
                                port, server.pid, "/api/v1/models/", cookies, args
                            )
                        finally:
                            stop.set()  # else leaving the pool waits for it forever
                    figures.rate["changes"].append(rate)
                    figures.cpu_ms["changes"].append(cpu_ms)
                    figures.changes.append(changes.result())
                    figures.slowest.append(max(times) * 1000)
                    figures.p99.append(percentile(times, 0.99) * 1000)
                    figures.median.append(percentile(times, 0.5) * 1000)
                    # The next round's list starts warm, as the floor's does (which no change
                    # reaches): what a change costs is measured by the load while changing.
                    load(port, "/api/v1/models/", cookies, WARM_UP, args.concurrency)
                print(f"round {len(figures.rate['floor'])}: {figures.round_text()}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(
        f"GET /api/v1/models/ ({PROVIDERS} providers x {models_per_provider} models, "
        f"{groups} groups, {len(floor_body)} bytes), {args.requests} requests a load at "
        f"concurrency {args.concurrency}, gunicorn {args.workers} uvicorn workers, "
        f"{args.rounds} rounds of floor, model list"
        + (", model list while a model changes" if args.large else "")
        + ": median (min-max) of the rounds"
    )
    labels = {"models": "model list", "floor": "floor", "changes": "while changing"}
    for name, rates in figures.rate.items():
        print(
            f"  {labels[name] + ':':16}{spread(rates):>24} requests/s, server CPU "
            f"{spread(figures.cpu_ms[name], '{:.2f}'.format)} ms per request"
        )
    ratio = ratios(figures.rate["models"], figures.rate["floor"])
    print(f"  ratio to floor: {spread(ratio, '{:.2f}'.format):>24} (target >= 0.9)")
    print(
        f"  queries per request: cold {queries['cold']}, cached {queries['cached']}, "
        f"floor {queries['floor']}"
    )
    if args.large:
        print(
            f"  while a model changed {spread(figures.changes, '{:.0f}'.format)} times a round:"
            f" slowest {spread(figures.slowest, '{:.0f}'.format)} ms (target < 250 ms), "
            f"p99 {spread(figures.p99, '{:.0f}'.format)} ms, "
            f"median {spread(figures.median, '{:.0f}'.format)} ms"
        )
    print(load_line("end"))


if __name__ == "__main__":
    main()
