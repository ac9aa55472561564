"""The usage dashboard in a real headless Chromium: the charts render under the policy."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from billing.ledger import usage_record
from llmadmin.providers.contract import Usage
from tests.browser import log_in_as_admin, policy_violations
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db(transaction=True)

DAY = date(2026, 3, 2)


DASHBOARD = "/admin/llmadmin/dailyusage/"


@pytest.fixture
def problems(page: Page) -> Iterator[list[str]]:
    """Policy violations, console errors (a failed load among them) and uncaught page errors
    the browser reports."""
    found = policy_violations(page)
    page.on(
        "console",
        lambda message: (
            found.append(f"{message.text} {message.location['url']}")
            # The browser asks for /favicon.ico on its own; the app has none.
            if message.type == "error" and not message.location["url"].endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: found.append(str(error)))
    yield found


def spend(django_user_model) -> None:
    """Two developers, one in a group, with two models over a week: one at Anthropic, one at a
    second OpenAI Compatible account."""
    team = Group.objects.create(name="platform")
    ada = django_user_model.objects.create_user("ada")
    ada.groups.add(team)
    lin = django_user_model.objects.create_user("lin")
    sonnet = LLMModelFactory(
        provider=ProviderFactory(anthropic=True),
        display_name="Claude Sonnet",
        input_price=Decimal(3),
        output_price=Decimal(15),
    )
    mini = LLMModelFactory(
        provider=ProviderFactory(openai_compat=True, name="Internal vLLM"),
        display_name="GPT Mini",
        input_price=Decimal("0.25"),
        output_price=Decimal(2),
    )
    for n in range(7):
        for user, model, tokens in ((ada, sonnet, 200_000), (lin, mini, 900_000)):
            usage_record(
                user_id=user.pk,
                model=model,
                called_at=datetime.combine(DAY + timedelta(days=n), time(10), tzinfo=UTC),
                usage=Usage(input_tokens=tokens * (n + 1), output_tokens=tokens // 10),
            )


def test_the_charts_render_with_bars_legends_and_hover_titles(
    page, asgi_server, problems, django_user_model
):
    spend(django_user_model)
    log_in_as_admin(page, asgi_server)

    page.get_by_role("link", name="Usage", exact=True).first.click()
    expect(page.locator("#usage-range")).to_be_visible()
    page.fill("#id_start", "2026-03-01")
    page.fill("#id_end", "2026-03-10")
    page.click("#usage-range input[type=submit]")

    charts = page.locator("figure.usage-chart > svg")
    expect(charts).to_have_count(5)
    for index in range(5):
        chart = charts.nth(index)
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box and box["width"] > 600 and box["height"] > 150
    bars = page.locator("#chart-model .bars rect")
    # 7 days x 2 models: each a segment with a real size on screen.
    expect(bars).to_have_count(14)
    sizes = [bars.nth(n).bounding_box() for n in range(14)]
    assert all(size and size["width"] > 10 and size["height"] > 0.5 for size in sizes)
    # The legend names each key with its total.
    legend = page.locator("#chart-model .usage-legend li")
    expect(legend).to_have_count(2)
    expect(legend.nth(0)).to_contain_text("Claude Sonnet")
    expect(legend.nth(1)).to_contain_text("GPT Mini")
    expect(page.locator("#chart-group .usage-legend")).to_contain_text("No group")
    providers = page.locator("#chart-provider .usage-legend li")
    expect(providers).to_have_count(2)
    expect(providers.nth(0)).to_contain_text("Anthropic")
    expect(providers.nth(1)).to_contain_text("Internal vLLM (OpenAI Compatible)")
    expect(page.locator("#chart-client .usage-legend")).to_contain_text("Chat (the /agents/ page)")
    # A bar's hover text: its day, key and value.
    first = page.locator("#chart-model .bars g.series").first.locator("rect title").first
    assert first.text_content() == "2026-03-02 · Claude Sonnet: $0.90"
    # The bars are filled with their series' colour, not the default black.
    fill = page.evaluate("getComputedStyle(document.querySelector('#chart-model .bars rect')).fill")
    assert fill == "rgb(0, 114, 178)"
    # Axis labels in dollars, the axis titles and the chart's title.
    expect(page.locator("#chart-model .y-label").first).to_have_text("$0")
    expect(page.locator("#chart-model")).to_contain_text("USD per day")
    expect(page.locator("#chart-model figcaption")).to_have_text("Cost per day by model")
    expect(page.locator("#usage-by-user table")).to_contain_text("lin")

    # The same range as CSV, through the ASGI server (read a batch at a time there).
    href = page.locator("#usage-csv").get_attribute("href")
    response = page.request.get(f"{asgi_server}{href}")
    assert response.ok
    rows = list(csv.reader(io.StringIO(response.text())))
    assert len(rows) == 1 + 14 and rows[1][:3] == ["2026-03-02", "ada", "platform"]

    assert problems == []


def test_a_bad_range_shows_the_error_and_no_chart(page, asgi_server, problems):
    log_in_as_admin(page, asgi_server, f"{DASHBOARD}?start=2026-03-10&end=2026-03-01")

    expect(page.locator(".usage-range-field.errors .errorlist")).to_have_text(
        "The end is before the start."
    )
    expect(page.locator("#id_start")).to_have_value("2026-03-10")
    expect(page.locator("figure.usage-chart")).to_have_count(0)
    assert problems == []


def test_on_a_phone_the_dashboard_fits_and_unpriced_calls_read_unpriced(
    page, asgi_server, problems, django_user_model
):
    spend(django_user_model)
    # A model without prices: its calls have no known cost, which is not a cost of $0.
    large = LLMModelFactory(provider=ProviderFactory(google=True), display_name="Fake Large")
    for user in django_user_model.objects.filter(username__in=["ada", "lin"]):
        usage_record(
            user_id=user.pk,
            model=large,
            called_at=datetime.combine(DAY, time(11), tzinfo=UTC),
            usage=Usage(input_tokens=1000, output_tokens=100),
        )
    page.set_viewport_size({"width": 390, "height": 844})
    log_in_as_admin(page, asgi_server, f"{DASHBOARD}?start=2026-03-01&end=2026-03-10")

    # Nothing wider than the screen: the page never scrolls sideways.
    expect(page.locator("#usage-by-model table")).to_be_attached()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for chart in page.locator("figure.usage-chart > svg").all():
        box = chart.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
    # A table wider than the screen scrolls inside its own box.
    scroller = page.locator("#usage-by-model .usage-table-scroll")
    box = scroller.bounding_box()
    assert box and box["x"] + box["width"] <= 390
    assert scroller.evaluate("box => box.scrollWidth > box.clientWidth")
    # Unpriced in the legend and the table, never $0.00; a developer with both says how many.
    legend = page.locator("#chart-model .usage-legend li", has_text="Fake Large")
    expect(legend.locator(".legend-total")).to_have_text("unpriced")
    row = page.locator("#usage-by-model tbody tr", has_text="Fake Large")
    expect(row.locator("td").last).to_have_text("unpriced")
    ada = page.locator("#usage-by-user tbody tr", has_text="ada")
    expect(ada.locator("td").last).to_have_text("$18.90 + 1 unpriced call")
    expect(page.locator("#usage-spend")).to_contain_text("+ 2 unpriced calls")
    assert problems == []
