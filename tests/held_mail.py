"""A mail server that answers only once a test lets it: what a slow one holds up shows."""

from __future__ import annotations

import threading
import time

from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from chat.retries import ALERT_THREAD_COUNT, ALERT_THREADS


class HeldMail(EmailBackend):
    """Django's test outbox, each send waiting for `answer` (at most 5 s); `waiting` is set
    once a send waits."""

    answer = threading.Event()
    waiting = threading.Event()

    def send_messages(self, messages):
        self.waiting.set()
        self.answer.wait(5)
        return super().send_messages(messages)


def mails_within(seconds: float = 5) -> list:
    """The outbox once it holds a mail, or after `seconds`: mails are sent by the server's
    threads."""
    until = time.monotonic() + seconds
    while not mail.outbox and time.monotonic() < until:
        time.sleep(0.01)
    return list(mail.outbox)


def alert_checks_done(seconds: float = 5) -> None:
    """Wait until the budget alert checks asked for so far have run: each alert thread joins
    this wait only once it is done with what it took before."""
    everyone = threading.Barrier(ALERT_THREAD_COUNT + 1, timeout=seconds)
    for _ in range(ALERT_THREAD_COUNT):
        ALERT_THREADS.submit(everyone.wait)
    everyone.wait()
