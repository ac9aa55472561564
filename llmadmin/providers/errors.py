"""The fixed vocabulary of provider errors: every message is our own words.

Nothing a provider sends is ever put into a message: not its status text, error type, code or
message, a redirect target, nor a body. Providers' answers are untrusted and may echo the key.
A message is built from our own words, the admin's configured host and a status number.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, Literal

from django.conf import settings

from llmadmin.providers.contract import StopReason

logger = logging.getLogger(__name__)

CheckStatus = Literal["verified", "rejected", "unreachable", "no_permission"]


class ProviderError(Exception):
    """A call that did not succeed. The message is ours alone: safe to show, store and log."""

    status: CheckStatus = "unreachable"
    # How an answer that ends with this error is recorded.
    stop_reason = StopReason.FAILED
    # The HTTP status a gateway client is answered with, before its answer began: what the
    # provider's refusal meant (429 stays 429), else 502 (the provider failed us).
    http_status = 502
    # How the call failed before any answer began, where another key of the account may
    # fare better (see KEY_FAULTS); None for any other failure.
    key_fault: str | None = None
    # Seconds to wait before trying again, when known (a provider's Retry-After, or a pool
    # whose keys are all cooling down); a gateway client is told it as Retry-After.
    retry_after: int | None = None
    # Whether the call was refused before anything was sent: then no call is recorded.
    unsent = False


# Failures before an answer began that another key of the account may not meet, and so are
# tried once more on the next key: the key refused (401, 403, Gemini's API_KEY_INVALID),
# rate-limited (429), out of credit (402), the provider failing (5xx), or no connection. A key
# that may not call this model (AWS's AccessDenied) is tried on the next key too, but not
# cooled down: it may call the account's other models.
KEY_FAULTS = ("rejected", "rate_limited", "out_of_credit", "failed", "unreachable")
NO_PERMISSION = "no_permission"
# The longest Retry-After a provider is taken at (beyond it, an admin's action is due).
MAX_RETRY_AFTER = 3600


def retry_after_of(value: str | None) -> int | None:
    """A Retry-After header's whole seconds (1 to MAX_RETRY_AFTER), or None when absent or
    not a number of seconds (an HTTP date is taken as absent: clocks differ)."""
    try:
        seconds = float((value or "").strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return max(1, min(MAX_RETRY_AFTER, math.ceil(seconds)))


def key_fault_of(error: ProviderError, status: int | None) -> str | None:
    """The KEY_FAULTS kind (or NO_PERMISSION) of a call refused with `error` and `status`
    (None: no connection); None when another key would fare no better."""
    if status is None:
        return "unreachable"
    if isinstance(error, LacksPermission):
        return NO_PERMISSION
    if isinstance(error, KeyRejected) or status in (401, 403):
        return "rejected"
    if status == 402:
        return "out_of_credit"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "failed"
    return None


class KeyRejected(ProviderError):
    status: CheckStatus = "rejected"


class Unreachable(ProviderError):
    pass


class ChatError(ProviderError):
    pass


class RequestRefused(ProviderError):
    """A gateway client's request that the model's settings refuse: nothing was sent. Its
    message names what to change."""

    http_status = 400
    unsent = True
    # The request's field to change, as the API names it (OpenAI's error `param`).
    param: str | None = None


def field_refused(param: str, message: str) -> RequestRefused:
    """A client's request refused on its field `param` (the API's name for it); the message,
    ours, says what is wrong without naming the field: each API's error names it its own way."""
    error = RequestRefused(message)
    error.param = param
    return error


# A client's field that a translation can't take to the model's API.
NO_COUNTERPART = "has no counterpart on this model."


class LacksPermission(ProviderError):
    """The credentials are valid but may not make this call."""

    status: CheckStatus = "no_permission"


class NoCredentials(ProviderError):
    """No credentials to call with: none stored or readable, or none on the server."""


# What these say is how the server is set up, for an administrator to fix: a developer is
# told only that the model is unavailable.
SETUP_FAULTS = (KeyRejected, LacksPermission, NoCredentials)


def key_rejected(status: int) -> KeyRejected:
    if status == 403:
        return KeyRejected(
            "The provider refused the API key (403): it is wrong or lacks permission."
        )
    return KeyRejected(f"The provider rejected the API key ({status}).")


def answered(host: str, status: int) -> str:
    """Our words for an error answer that is no refused key: what it means, the status
    number and its standard name (never the provider's own reason text)."""
    try:
        code = f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        code = str(status)
    if status in (404, 405, 410):
        return f"Wrong address: the server at {host} answered {code}; check the base URL."
    if status >= 500:
        return f"The server at {host} failed: it answered {code}."
    return f"The server at {host} refused the call: it answered {code}."


def with_status(error: ProviderError, http_status: int) -> ProviderError:
    error.http_status = http_status
    return error


def rate_limited() -> ChatError:
    error = ChatError("The provider's rate limit was reached: try again in a moment.")
    return with_status(error, 429)


def overloaded() -> ChatError:
    return with_status(ChatError("The provider is overloaded: try again in a moment."), 503)


def keys_cooling(seconds: int) -> ChatError:
    """Every key of the account is cooling down after failing: none is tried."""
    error = ChatError(
        f"Every key of this model's provider is cooling down: try again in {seconds} s."
    )
    error.retry_after = seconds
    error.unsent = True
    return with_status(error, 429)


def context_too_long() -> ChatError:
    error = ChatError("The conversation is too long for this model's context limit.")
    return with_status(error, 400)


def refused(status: int) -> ChatError:
    error = ChatError(f"The provider refused the request ({status}).")
    # A request the provider found wrong is the client's to fix; any other refusal is ours.
    return with_status(error, status if 400 <= status < 500 else 502)


def sent_credentials() -> ChatError:
    """A provider's answer held the key it was called with: not passed on."""
    return ChatError("The provider's answer held one of its credentials: it was not passed on.")


def malformed() -> ChatError:
    return ChatError("The provider sent a malformed answer.")


def cut_off() -> ChatError:
    error = ChatError("The provider's answer was cut off before it finished.")
    error.stop_reason = StopReason.CUT_OFF
    return error


def failed_mid_answer() -> ChatError:
    return ChatError("The provider reported an error mid-answer.")


def malformed_tool_call() -> ChatError:
    """The model's answer ended on a tool call its provider could not read."""
    return ChatError("The model made a malformed tool call: the answer was ended there.")


def timed_out(message: str) -> ChatError:
    error = ChatError(message)
    error.stop_reason = StopReason.TIMED_OUT
    return with_status(error, 504)


def went_silent() -> ChatError:
    return timed_out(
        f"The provider sent nothing for {settings.PROVIDER_READ_TIMEOUT:g} s: the answer was "
        "ended there."
    )


def idle_too_long() -> ChatError:
    return timed_out(
        f"The provider sent no answer text for {settings.PROVIDER_STREAM_IDLE_TIMEOUT:g} s: "
        "the answer was ended there."
    )


def past_deadline() -> ChatError:
    return timed_out(
        f"The answer took longer than {settings.PROVIDER_STREAM_TIMEOUT:g} s: it was ended there."
    )


# Words in a refused request's body that mean the conversation is too long. The body is only
# matched against these, never repeated.
CONTEXT_WORDS = (
    "context length",
    "context window",
    "too long",
    "too many tokens",
    "input token count",
)


def chat_error_for(status: int, body: str) -> ProviderError:
    """Our message for a refused chat request."""
    if status in (401, 403):
        return key_rejected(status)
    if status == 429:
        return rate_limited()
    if status in (503, 529):
        return overloaded()
    if status in (400, 413) and any(words in body.lower() for words in CONTEXT_WORDS):
        return context_too_long()
    return refused(status)


def mid_stream_error(kind: str) -> ChatError:
    """Our message for an error event inside a stream, from the provider's error type or code.

    The type is only compared with known words, never repeated.
    """
    kind = kind.lower()
    if "overloaded" in kind or kind in ("503", "529", "unavailable", "servicesunavailable"):
        return overloaded()
    if "rate_limit" in kind or "throttling" in kind or kind in ("429", "resource_exhausted"):
        return rate_limited()
    return failed_mid_answer()


def error_kind(error: Any) -> str:
    """The type or code of an error object, for mid_stream_error to compare; never shown."""
    if not isinstance(error, dict):
        return ""
    return str(error.get("type") or error.get("status") or error.get("code") or "")


@contextmanager
def untrusted_answer(failure: Any) -> Iterator[None]:
    """Anything unexpected while calling a provider or reading its answer (a shape the parser
    did not foresee, a header the HTTP library chokes on) becomes `failure()`.

    The log says where it happened, never the error's text: that may quote the answer.
    """
    try:
        yield
    except ProviderError:
        raise
    except Exception as error:
        raise unexpected(error, failure) from None


def unexpected(error: Exception, failure: Any) -> ProviderError:
    """`failure()` for an error untrusted_answer turns into it, logged where it happened."""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    logger.warning(
        "Unexpected %s at %s:%s while reading a provider's answer.",
        type(error).__name__,
        frame.filename,
        frame.lineno,
    )
    return failure()
