"""The developers' chat and their usage panel in a real headless Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, Route, expect

from billing.ledger import usage_record
from billing.models import UserBudget
from chat.models import Conversation, Message
from llmadmin.models import LLMModel
from llmadmin.providers.contract import Usage
from tests.browser import log_in_as_developer
from tests.factories import LLMModelFactory, ProviderFactory
from tests.providers.fakes import FakeProvider, serve

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-browser-chat"
MILLION = 1_000_000
# USD per million tokens: a call of a million input tokens (as the fakes below report) and
# 5 output tokens costs $3.000075.
PRICES = {"input_price": Decimal(3), "output_price": Decimal(15), "context_limit": 2 * MILLION}


def spend_elsewhere(user: User, model: LLMModel, calls: int) -> None:
    """Calls of $3.000075 each that this page did not make (another tab, another agent)."""
    for _ in range(calls):
        usage_record(
            user_id=user.pk, model=model, called_at=datetime.now(UTC), usage=Usage(MILLION, 5)
        )


def send(page: Page, text: str) -> None:
    page.fill("#chat-input", text)
    page.click("#chat-form button")


def test_the_usage_panel_follows_each_turn_and_a_refusal(page, asgi_server):
    with serve(FakeProvider("openai", KEY, input_tokens=MILLION)) as server:
        provider = ProviderFactory(openai=True, api_key=KEY, base_url=f"{server.url}/v1")
        model = LLMModelFactory(provider=provider, display_name="GPT-5", **PRICES)
        user = log_in_as_developer(page, asgi_server)
        UserBudget.objects.create(user=user, monthly_allowance=Decimal(10))
        page.goto(f"{asgi_server}/agents/")
        budget, button = page.locator("#budget-status"), page.locator("#chat-form button")
        expect(budget).to_contain_text("$0.00 of your $10.00 monthly budget spent: $10.00 left")

        send(page, "Hi")

        expect(budget).to_contain_text("$3.00 of your $10.00 monthly budget spent: $6.99 left")
        expect(page.locator("#usage-by-model td").first).to_have_text("GPT-5")
        expect(button).to_be_enabled()

        spend_elsewhere(user, model, 3)
        send(page, "More")

        expect(page.locator(".message.error")).to_contain_text(
            "Your monthly budget of $10.00 is spent ($12.00)"
        )
        expect(budget).to_contain_text("Your monthly budget of $10.00 is spent ($12.00)")
        # Every message would be refused: Send says so rather than let them try.
        expect(button).to_be_disabled()
        expect(page.locator("#send-status")).to_contain_text("your monthly budget is spent")
        expect(page.locator("#chat-input")).to_have_value("More")

    # An administrator raises the budget; the developer comes back to the page.
    UserBudget.objects.filter(user=user).update(monthly_allowance=Decimal(100))
    page.evaluate("window.dispatchEvent(new Event('focus'))")

    expect(budget).to_contain_text("$12.00 of your $100.00 monthly budget spent")
    expect(button).to_be_enabled()
    expect(page.locator("#send-status")).to_be_hidden()


def test_send_waits_for_the_model_list(page, asgi_server):
    # Sent before the list came, a message went nowhere: no model to send it to, and no word.
    LLMModelFactory(display_name="GPT-5")
    held = []
    page.route("**/api/v1/models/", lambda route: held.append(route))
    log_in_as_developer(page, asgi_server)
    page.goto(f"{asgi_server}/agents/")
    page.fill("#chat-input", "Hi")
    button = page.locator("#chat-form button")

    expect(button).to_be_disabled()
    held[0].continue_()
    expect(button).to_be_enabled()


def test_an_older_usage_answer_never_replaces_a_newer_one(page, asgi_server):
    user = log_in_as_developer(page, asgi_server)
    UserBudget.objects.create(user=user, monthly_allowance=Decimal(10))
    page.goto(f"{asgi_server}/agents/")
    budget = page.locator("#budget-status")
    expect(budget).to_contain_text("of your $10.00 monthly budget")
    held = []  # the first refresh's answer, read now (the $10 budget), delivered last

    def hold_the_first(route: Route) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route("**/agents/usage/", hold_the_first)
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)

    UserBudget.objects.filter(user=user).update(monthly_allowance=Decimal(100))
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    expect(budget).to_contain_text("of your $100.00 monthly budget")
    route, older = held[0]
    with page.expect_event("requestfinished"):
        route.fulfill(response=older)
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => setTimeout(done, 50)))")

    assert "of your $100.00 monthly budget" in budget.inner_text()


def test_a_spent_model_cap_turns_send_off_for_that_model_only(page, asgi_server):
    provider = ProviderFactory(openai=True)
    capped = LLMModelFactory(
        provider=provider, display_name="GPT-5", is_default=True, monthly_cap=5, **PRICES
    )
    LLMModelFactory(provider=provider, display_name="GPT-5 mini")
    spend_elsewhere(log_in_as_developer(page, asgi_server), capped, 2)

    page.goto(f"{asgi_server}/agents/")

    button, status = page.locator("#chat-form button"), page.locator("#send-status")
    expect(status).to_have_text(
        "Sending to this model is off: your monthly cap for it is spent (see above). "
        "Choose another model."
    )
    expect(button).to_be_disabled()
    page.select_option("#model-select", label="GPT-5 mini")
    expect(button).to_be_enabled()
    expect(status).to_be_hidden()


def test_enter_sends_and_every_answer_names_its_model_after_a_reload_too(page, asgi_server):
    with serve(FakeProvider("anthropic", KEY, reply=("Hel", "lo"))) as server:
        provider = ProviderFactory(anthropic=True, api_key=KEY, base_url=server.url)
        LLMModelFactory(provider=provider, display_name="Claude Haiku", is_default=True)
        LLMModelFactory(provider=provider, display_name="Claude Sonnet")
        log_in_as_developer(page, asgi_server)
        page.goto(f"{asgi_server}/agents/")
        expect(page.locator("#model-select")).to_be_visible()
        box = page.locator("#chat-input")

        box.fill("Two")
        box.press("Shift+Enter")
        box.press_sequentially("lines")
        box.press("Enter")
        expect(page.locator(".message.assistant .text")).to_have_text(["Hello"])
        expect(box).to_be_focused()

        page.select_option("#model-select", label="Claude Sonnet")
        box.fill("Again")
        page.click("#chat-form button")
        expect(page.locator(".message.assistant .text")).to_have_text(["Hello", "Hello"])
        expect(box).to_be_focused()

    transcript = [
        "You said: Two\nlines",
        "Claude Haiku answered: Hello",
        "You said: Again",
        "Claude Sonnet answered: Hello",
    ]
    expect(page.locator(".message")).to_have_text(transcript)
    expect(page).to_have_url(re.compile(r"/agents/\?conversation=\d+$"))

    page.reload()

    expect(page.locator(".message")).to_have_text(transcript)
    # Screen readers hear who speaks; the eye sees the model's name only.
    expect(page.locator(".message.user .visually-hidden")).to_have_text(["You said:"] * 2)
    assert page.locator(".message.user .visually-hidden").first.bounding_box()["width"] <= 1


def test_a_conversation_that_is_not_theirs_is_not_read_back(page, asgi_server):
    LLMModelFactory(display_name="Claude Haiku")
    theirs = Conversation.objects.create(owner=User.objects.create_user("someone-else"))
    Message.objects.create(conversation=theirs, role=Message.Role.USER, content="Private")
    log_in_as_developer(page, asgi_server)

    page.goto(f"{asgi_server}/agents/?conversation={theirs.pk}")

    expect(page.locator(".message")).to_have_text(
        ["The conversation could not be loaded (HTTP 404): your next message starts a new one."]
    )
    expect(page).to_have_url(f"{asgi_server}/agents/")
    expect(page.locator("#chat-form button")).to_be_enabled()
