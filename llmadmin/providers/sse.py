"""Reading a streamed answer: server-sent-event framing, each event's JSON and its token
counts, with limits on what a hostile stream can make us hold; and a client's tool call
arguments read as the JSON object the families send."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2

from llmadmin.providers.errors import cut_off, field_refused, malformed, went_silent


async def sse_events(response: httpx2.Response) -> AsyncIterator[tuple[str, str]]:
    """(event name, data) of a server-sent event stream as each event arrives; comments are
    skipped.

    Lines are split as bytes and decoded as UTF-8 (as SSE is defined), whatever charset the
    provider claims. Each chunk is split as soon as it is read: nothing waits for more bytes.
    """
    event, data = "", []
    async for raw_line in lines_of(response):
        line = raw_line.decode("utf-8", "replace")
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            if len(data) > MAX_EVENT_LINES:
                raise malformed()
    if data:
        yield event, "\n".join(data)


def sse_event(name: str, data: str) -> bytes:
    """One server-sent event for a gateway client: a provider's event data as it sent it,
    framed anew (its comments and line endings are the provider's framing, not the answer).
    Data holding a line end of any kind (CR too) becomes data lines, as a client splits it."""
    head = f"event: {name}\n" if name else ""
    lines = "".join(f"data: {line}\n" for line in TEXT_LINE_END.split(data))
    return f"{head}{lines}\n".encode()


TEXT_LINE_END = re.compile(r"\r\n|\r|\n")
# An event's data lines; every provider sends one.
MAX_EVENT_LINES = 64
# SSE ends a line with CRLF, LF or CR.
LINE_END = re.compile(rb"\r\n|\n|\r")
# No event of any provider comes near this: a longer line is garbage (or an attack).
MAX_LINE = 1024 * 1024


async def lines_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body's lines, each as soon as its end arrives; a last unterminated line too. Only
    each new chunk is searched, so a long line costs linear time; it may not pass MAX_LINE."""
    pending: list[bytes] = []  # the line not yet ended, in pieces
    pending_size = 0
    after_cr = False
    async for chunk in chunks_of(response):
        if after_cr and chunk.startswith(b"\n"):  # the second half of a CRLF
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        *ended, rest = LINE_END.split(chunk)
        for line in ended:
            yield b"".join([*pending, line])
            pending, pending_size = [], 0
        pending.append(rest)
        pending_size += len(rest)
        if pending_size > MAX_LINE:
            raise malformed()
    if pending_size:
        yield b"".join(pending)


async def chunks_of(response: httpx2.Response) -> AsyncIterator[bytes]:
    """The body as it arrives, decompressed; a connection that breaks mid-answer cuts it off."""
    try:
        # As sent: an encoding we didn't ask for is not decoded (it then fails to parse).
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx2.TimeoutException:
        raise went_silent() from None
    except httpx2.HTTPError:
        raise cut_off() from None


def json_data(data: str | bytes) -> dict[str, Any]:
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        raise malformed() from None
    if not isinstance(payload, dict):
        raise malformed()
    return payload


def tool_arguments(arguments: str, param: str) -> dict[str, Any]:
    """A tool call's arguments, as a client wrote them, read as a JSON object (none written:
    empty); RequestRefused naming `param` where they are none, nested past Python's limit
    too."""
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise field_refused(param, "a tool call's arguments must be a JSON object.")
    return value


# More than any context window: a larger count is garbage (and overflows the column).
MAX_TOKEN_COUNT = 2**31 - 1


def token_count(usage: Mapping[str, Any], name: str) -> int | None:
    """A token count from a usage object: 0 when absent (Gemini's JSON leaves zeros out),
    None when it is not a plausible whole number (-5, "lots", 1e20): a bad count is ignored,
    never stored."""
    value = usage.get(name, 0)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def reported(usage: Any, *path: str) -> int | None:
    """A part of a total that the provider may leave out, at a path of keys (usage,
    "prompt_tokens_details", "cached_tokens"): None when it is bad, or absent: not reported is
    not the same as none, which token_count's 0 for an absent count would say."""
    *parents, name = path
    for parent in parents:
        usage = usage.get(parent) if isinstance(usage, Mapping) else None
    if not isinstance(usage, Mapping) or name not in usage:
        return None
    return token_count(usage, name)


def token_total(usage: Mapping[str, Any], *names: str) -> int | None:
    """The sum of counts (input and cache reads, output and thinking); None when one is bad."""
    counts = [token_count(usage, name) for name in names]
    if None in counts:
        return None
    return min(MAX_TOKEN_COUNT, sum(counts))
