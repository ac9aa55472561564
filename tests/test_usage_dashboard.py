"""The usage dashboard: sums and per-day series by model, provider, developer, group and
client, the date range form, the CSV, permissions, a constant number of queries, and
usage_rebuild."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing.ledger import client_product_of, usage_record
from billing.models import DailyUsage, Pricing, UsageRecord
from billing.report import Report, axis_text, nice_scale, usage_report, x_ticks
from llmadmin.models import LLMModel
from llmadmin.providers.contract import Usage
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("admin:billing_dailyusage_changelist")
CSV = reverse("admin:billing_dailyusage_csv")
DAY1, DAY2, DAY3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 5)
RANGE = {"start": "2026-03-02", "end": "2026-03-05"}
M = 1_000_000


def call(
    user: User,
    model: LLMModel,
    day: date,
    tokens: tuple[int, int] | None,
    user_agent: str | None = None,
) -> None:
    """A chat call, or with a User-Agent a gateway call."""
    usage_record(
        user_id=user.pk,
        model=model,
        called_at=datetime.combine(day, time(12), tzinfo=UTC),
        usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1]) if tokens else None,
        **({} if user_agent is None else {"kind": UsageRecord.Kind.GATEWAY}),
        client_name=user_agent or "",
    )


@pytest.fixture
def ledger(django_user_model) -> dict[str, object]:
    """Two priced models and an unpriced one at three providers; alice and dave in red, bob in
    blue, carol in no group; dave deleted since. USD per 1M tokens: Alpha 1 in, 2 out; Beta 3
    in, 4 out."""
    red, blue = Group.objects.create(name="red"), Group.objects.create(name="blue")
    users = {
        name: django_user_model.objects.create_user(name) for name in ("alice", "bob", "carol")
    }
    dave = django_user_model.objects.create_user("dave")
    users["alice"].groups.add(red)
    users["bob"].groups.add(blue)
    dave.groups.add(red)
    alpha = LLMModelFactory(
        provider=ProviderFactory(anthropic=True),
        display_name="Alpha",
        input_price=Decimal(1),
        output_price=Decimal(2),
    )
    beta = LLMModelFactory(
        provider=ProviderFactory(openai=True),
        display_name="Beta",
        input_price=Decimal(3),
        output_price=Decimal(4),
    )
    gamma = LLMModelFactory(provider=ProviderFactory(google=True), display_name="Gamma")
    alice, bob, carol = users["alice"], users["bob"], users["carol"]
    call(alice, alpha, DAY1, (M, M // 2))  # $2.00
    call(alice, alpha, DAY1, None)  # no token counts: uncosted
    call(dave, alpha, DAY1, (M // 2, 0))  # $0.50
    call(alice, beta, DAY2, (M // 10, M // 10))  # $0.70
    call(bob, alpha, DAY2, (2 * M, M))  # $4.00
    call(carol, beta, DAY3, (M, M // 4))  # $4.00
    call(carol, gamma, DAY3, (M // 2, M // 2))  # unpriced: uncosted
    dave_id = dave.pk
    dave.delete()
    return {**users, "dave_id": dave_id, "alpha": alpha, "beta": beta, "gamma": gamma}


def report(metric: str = "cost", start: date = DAY1, end: date = DAY3) -> Report:
    return usage_report(start=start, end=end, metric=metric)


def table(found: Report, dimension: str) -> list[tuple[str, int, int, int, int, Decimal]]:
    breakdown = next(b for b in found.breakdowns if b.dimension.name == dimension)
    return [
        (
            row.label,
            row.amounts.calls,
            row.amounts.uncosted_calls,
            row.amounts.input_tokens,
            row.amounts.output_tokens,
            row.amounts.cost,
        )
        for row in breakdown.rows
    ]


def titles(found: Report, dimension: str) -> dict[str, list[str]]:
    chart = next(b for b in found.breakdowns if b.dimension.name == dimension).chart
    return {series.label: [s.title for s in series.segments] for series in chart.series}


# The sums and the series.


def test_the_totals_count_every_call_and_leave_uncosted_ones_out_of_the_spend(ledger):
    totals = report().totals

    assert (totals.calls, totals.uncosted_calls) == (7, 2)
    assert totals.cost == Decimal("11.20")
    assert (totals.input_tokens, totals.output_tokens) == (5_100_000, 2_350_000)


def test_each_dimension_sums_its_keys_a_deleted_user_by_id_and_no_group_apart(ledger):
    found = report()
    dave = f"user #{ledger['dave_id']}"

    assert table(found, "model") == [
        ("Alpha", 4, 1, 3_500_000, 1_500_000, Decimal("6.50")),
        ("Beta", 2, 0, 1_100_000, 350_000, Decimal("4.70")),
        ("Gamma", 1, 1, 500_000, 500_000, Decimal(0)),
    ]
    assert table(found, "provider") == [
        ("Anthropic", 4, 1, 3_500_000, 1_500_000, Decimal("6.50")),
        ("OpenAI", 2, 0, 1_100_000, 350_000, Decimal("4.70")),
        ("Google (Gemini)", 1, 1, 500_000, 500_000, Decimal(0)),
    ]
    # Equal spend: the older key first.
    assert table(found, "user") == [
        ("bob", 1, 0, 2_000_000, 1_000_000, Decimal("4.00")),
        ("carol", 2, 1, 1_500_000, 750_000, Decimal("4.00")),
        ("alice", 3, 1, 1_100_000, 600_000, Decimal("2.70")),
        (dave, 1, 0, 500_000, 0, Decimal("0.50")),
    ]
    assert table(found, "group") == [
        ("blue", 1, 0, 2_000_000, 1_000_000, Decimal("4.00")),
        ("red", 4, 1, 1_600_000, 600_000, Decimal("3.20")),
        ("No group", 2, 1, 1_500_000, 750_000, Decimal("4.00")),
    ]


@pytest.fixture
def gateway_calls(ledger) -> None:
    """Beside the chat's calls: alice's through two versions of the OpenAI SDK and Claude
    Code, bob's through a client that gave no User-Agent. Alpha: $1 in, $2 out per 1M."""
    alice, bob, alpha = ledger["alice"], ledger["bob"], ledger["alpha"]
    call(alice, alpha, DAY1, (M, 0), "OpenAI/Python 3.57.0")  # $1.00
    call(alice, alpha, DAY2, (M, 0), "OpenAI/Python 3.58.1")  # $1.00
    call(alice, alpha, DAY2, (0, M), "claude-cli/1.0.83 (external, cli)")  # $2.00
    call(bob, alpha, DAY3, (M // 2, 0), "")  # $0.50


def test_spend_is_split_by_client_the_chat_apart_and_one_tool_across_its_versions(
    ledger, gateway_calls
):
    found = report()

    assert table(found, "client") == [
        ("Chat (the /agents/ page)", 7, 2, 5_100_000, 2_350_000, Decimal("11.20")),
        ("OpenAI/Python", 2, 0, 2_000_000, 0, Decimal("2.00")),
        ("claude-cli", 1, 0, 0, 1_000_000, Decimal("2.00")),
        ("(unnamed client)", 1, 0, 500_000, 0, Decimal("0.50")),
    ]
    assert titles(found, "client")["OpenAI/Python"] == [
        "2026-03-02 · OpenAI/Python: $1.00",
        "2026-03-03 · OpenAI/Python: $1.00",
    ]


@pytest.mark.parametrize(
    ("kind", "user_agent", "client"),
    [
        ("chat", "", ""),
        ("summary", "", ""),
        ("gateway", "OpenAI/Python 3.57.0", "OpenAI/Python"),
        ("gateway", "Anthropic/Python 2.14.0", "Anthropic/Python"),
        ("gateway", "claude-cli/1.0.83 (external, cli)", "claude-cli"),
        ("gateway", "codex_cli_rs/0.20.0 (Mac OS 14.5.0; arm64) iTerm.app/3.5", "codex_cli_rs"),
        ("gateway", "llm/0.27.1 python-httpx/0.28.1", "llm python-httpx"),
        ("gateway", "curl/8.5.0", "curl"),
        ("gateway", "", "(unnamed client)"),
        ("gateway", "(only a comment)", "(unnamed client)"),
        ("gateway", "1.2.3", "(unnamed client)"),
    ],
    ids=[
        "chat",
        "summary",
        "openai-sdk",
        "anthropic-sdk",
        "claude-code",
        "codex",
        "two-products",
        "curl",
        "no-user-agent",
        "comment-only",
        "version-only",
    ],
)
def test_a_clients_versions_and_comments_are_left_out_of_its_name(kind, user_agent, client):
    assert client_product_of(kind=kind, client=user_agent) == client


def test_the_series_stack_each_keys_value_per_day_and_keep_empty_days(ledger):
    found = report()

    assert titles(found, "model") == {
        "Alpha": ["2026-03-02 · Alpha: $2.50", "2026-03-03 · Alpha: $4.00"],
        "Beta": ["2026-03-03 · Beta: $0.70", "2026-03-05 · Beta: $4.00"],
        "Gamma": [],  # costs nothing that can be charted
    }
    chart = found.breakdowns[0].chart
    assert (chart.title, chart.y_title) == ("Cost per day by model", "USD per day")
    # Four days, the 4th of March without usage: four slots, four labels.
    assert [tick.label for tick in chart.x_ticks] == ["2 Mar", "3 Mar", "4 Mar", "5 Mar"]
    alpha, beta = chart.series[0].segments[1], chart.series[1].segments[0]
    assert alpha.y + alpha.height == pytest.approx(chart.bottom, abs=0.02)
    assert beta.y + beta.height == pytest.approx(alpha.y, abs=0.02)  # stacked on Alpha
    assert beta.x == alpha.x
    # The highest day is $4.70: an axis to $6 in steps of $2.
    assert [tick.label for tick in chart.y_ticks] == ["$0", "$2", "$4", "$6"]


def test_the_token_metric_charts_input_plus_output(ledger):
    found = report("tokens")

    assert titles(found, "group")["No group"] == ["2026-03-05 · No group: 2,250,000 tokens"]
    assert [row.label for row in found.breakdowns[0].rows] == ["Alpha", "Beta", "Gamma"]
    assert titles(found, "model")["Gamma"] == ["2026-03-05 · Gamma: 1,000,000 tokens"]


def test_the_top_eight_keys_are_charted_and_the_rest_summed_as_other(django_user_model):
    user = django_user_model.objects.create_user("solo")
    models = [
        LLMModelFactory(display_name=f"M{n}", input_price=Decimal(1), output_price=Decimal(1))
        for n in range(10)
    ]
    for n, model in enumerate(models):
        call(user, model, DAY1, ((n + 1) * M // 10, 0))  # M0 $0.10 ... M9 $1.00
    call(user, models[0], DAY2, (M, 0))  # M0: $1.10 in all, the most

    found = report()

    assert [(label, cost) for label, *_, cost in table(found, "model")] == [
        ("M0", Decimal("1.10")),
        *((f"M{n}", Decimal(n + 1) / 10) for n in range(9, 2, -1)),
        ("Other", Decimal("0.50")),  # M1 and M2
    ]
    assert titles(found, "model")["Other"] == ["2026-03-02 · Other: $0.50"]
    colors = [series.color for series in found.breakdowns[0].chart.series]
    assert len(set(colors)) == 9 and colors[-1] == "#BBBBBB"


def test_the_metric_decides_the_top_keys(django_user_model):
    user = django_user_model.objects.create_user("solo")
    pricey = LLMModelFactory(display_name="Pricey", input_price=Decimal(100), output_price=1)
    cheap = LLMModelFactory(display_name="Cheap", input_price=Decimal(0), output_price=0)
    call(user, pricey, DAY1, (M // 100, 0))  # $1.00, 10,000 tokens
    call(user, cheap, DAY1, (M, M))  # free, 2,000,000 tokens

    assert [row.label for row in report("cost").breakdowns[0].rows] == ["Pricey", "Cheap"]
    assert [row.label for row in report("tokens").breakdowns[0].rows] == ["Cheap", "Pricey"]


def test_the_range_takes_its_first_and_last_day_and_nothing_outside(ledger):
    assert report(start=DAY2, end=DAY2).totals.calls == 2
    assert report(start=DAY1, end=DAY2).totals.calls == 5
    assert report(start=DAY3 + timedelta(days=1), end=DAY3 + timedelta(days=9)).totals.calls == 0


def test_a_deleted_model_and_group_are_shown_by_id(ledger):
    gamma_id = ledger["gamma"].pk
    LLMModel.objects.filter(pk=gamma_id).delete()
    red = Group.objects.get(name="red")
    red_id = red.pk
    red.delete()

    found = report()

    assert [row.label for row in found.breakdowns[0].rows][-1] == f"model #{gamma_id}"
    assert f"group #{red_id}" in [row.label for row in found.breakdowns[3].rows]


def test_models_of_the_same_name_at_two_providers_are_told_apart(django_user_model):
    user = django_user_model.objects.create_user("solo")
    for provider in (ProviderFactory(anthropic=True), ProviderFactory(bedrock=True)):
        model = LLMModelFactory(
            provider=provider, display_name="Claude", input_price=1, output_price=1
        )
        call(user, model, DAY1, (M, 0))

    labels = [row.label for row in report().breakdowns[0].rows]

    assert sorted(labels) == ["Claude (AWS Bedrock)", "Claude (Anthropic)"]


# Several accounts of one type.


@pytest.fixture
def two_accounts(django_user_model) -> dict[str, object]:
    """OpenAI Compatible's first account (a LiteLLM gateway) and a second, Internal vLLM, each
    with a model named Llama at $1 per 1M tokens: $1 spent at the first, $2 at vLLM."""
    gateway = ProviderFactory(openai_compat=True)
    vllm = ProviderFactory(openai_compat=True, name="Internal vLLM", base_url="http://vllm/v1")
    user = django_user_model.objects.create_user("erin")
    for account, spent in ((gateway, 1), (vllm, 2)):
        llama = LLMModelFactory(
            provider=account,
            identifier="llama",
            display_name="Llama",
            input_price=1,
            output_price=1,
        )
        call(user, llama, DAY1, (spent * M, 0))
    return {"gateway": gateway, "vllm": vllm}


def test_two_accounts_of_one_type_are_split_each_under_its_label(two_accounts):
    found = report()

    assert table(found, "provider") == [
        ("Internal vLLM (OpenAI Compatible)", 1, 0, 2 * M, 0, Decimal(2)),
        ("OpenAI Compatible", 1, 0, M, 0, Decimal(1)),
    ]
    assert titles(found, "provider") == {
        "Internal vLLM (OpenAI Compatible)": [
            "2026-03-02 · Internal vLLM (OpenAI Compatible): $2.00"
        ],
        "OpenAI Compatible": ["2026-03-02 · OpenAI Compatible: $1.00"],
    }
    # Models of one name at two accounts: by the account's name.
    assert [row.label for row in found.breakdowns[0].rows] == [
        "Llama (Internal vLLM)",
        "Llama (OpenAI Compatible)",
    ]


def test_the_page_and_the_csv_name_each_account(admin_client, two_accounts):
    page = admin_client.get(DASHBOARD, RANGE).text
    header, *rows = csv_rows(admin_client.get(CSV, RANGE))

    by_provider = page.split('id="usage-by-provider"')[1].split("</section>")[0]
    assert '<th scope="row">Internal vLLM (OpenAI Compatible)</th>' in by_provider
    assert '<th scope="row">OpenAI Compatible</th>' in by_provider
    named = [dict(zip(header, row, strict=True)) for row in rows]
    assert sorted((row["provider"], row["provider account"], row["cost"]) for row in named) == [
        ("OpenAI Compatible", "Internal vLLM", "2.00"),
        ("OpenAI Compatible", "OpenAI Compatible", "1.00"),
    ]


def test_a_deleted_accounts_spend_is_shown_by_its_id_never_as_a_live_accounts(
    admin_client, two_accounts
):
    vllm_id = two_accounts["vllm"].pk
    delete = reverse("admin:llmadmin_provider_delete", args=[vllm_id])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 302  # and its models
    gone = f"OpenAI Compatible account #{vllm_id} (deleted)"

    found = report()
    page = admin_client.get(DASHBOARD, RANGE).text
    header, *rows = csv_rows(admin_client.get(CSV, RANGE))

    assert table(found, "provider") == [
        (gone, 1, 0, 2 * M, 0, Decimal(2)),
        ("OpenAI Compatible", 1, 0, M, 0, Decimal(1)),
    ]
    assert titles(found, "provider")[gone] == [f"2026-03-02 · {gone}: $2.00"]
    by_provider = page.split('id="usage-by-provider"')[1].split("</section>")[0]
    assert f'<th scope="row">{gone}</th>' in by_provider
    assert by_provider.count('<th scope="row">OpenAI Compatible</th>') == 1
    accounts = sorted(dict(zip(header, row, strict=True))["provider account"] for row in rows)
    assert accounts == ["OpenAI Compatible", gone]


def test_sums_from_before_accounts_whose_model_was_gone_are_shown_per_type(ledger):
    # What the migration leaves where a model was deleted before it: no account.
    DailyUsage.objects.update(provider=None)

    assert table(report(), "provider") == [
        ("Anthropic", 4, 1, 3_500_000, 1_500_000, Decimal("6.50")),
        ("OpenAI", 2, 0, 1_100_000, 350_000, Decimal("4.70")),
        ("Google (Gemini)", 1, 1, 500_000, 500_000, Decimal(0)),
    ]
    assert report(metric="tokens").totals.calls == 7


# The chart's scale and labels.


@pytest.mark.parametrize(
    ("peak", "integers", "scale"),
    [
        (4.7, False, (6, 2)),
        (1, False, (1, 0.25)),
        (0, False, (1, 0.25)),  # nothing spent: still an axis
        (0.0042, False, (0.006, 0.002)),
        (1100, False, (1500, 500)),
        (0, True, (4, 1)),
        (3, True, (3, 1)),
        (123_456, True, (150_000, 50_000)),
        (2_000_000, True, (2_000_000, 500_000)),
    ],
)
def test_the_y_axis_ends_at_a_round_value_with_four_or_five_gridlines(peak, integers, scale):
    top, step = nice_scale(peak, integers)

    assert (top, step) == pytest.approx(scale)
    assert 3 <= round(top / step) <= 4 or (integers and step == 1)


@pytest.mark.parametrize(
    ("value", "metric", "text"),
    [
        (0, "cost", "$0"),
        (0.25, "cost", "$0.25"),
        (0.30000000000000004, "cost", "$0.3"),
        (1500, "cost", "$1.5k"),
        (0.002, "cost", "$0.002"),
        (750, "tokens", "750"),
        (250_000, "tokens", "250k"),
        (1_500_000, "tokens", "1.5M"),
        (2_000_000_000, "tokens", "2B"),
    ],
)
def test_axis_labels_are_short(value, metric, text):
    assert axis_text(value, metric) == text


@pytest.mark.parametrize(
    ("start", "days", "labels"),
    [
        (date(2026, 3, 1), 3, ["1 Mar", "2 Mar", "3 Mar"]),
        (date(2026, 3, 1), 30, ["1 Mar", "8 Mar", "15 Mar", "22 Mar", "29 Mar"]),
        (
            date(2025, 3, 15),
            366,
            [
                "Apr 2025",
                "May",
                "Jun",
                "Jul",
                "Aug",
                "Sep",
                "Oct",
                "Nov",
                "Dec",
                "Jan 2026",
                "Feb",
                "Mar",
            ],
        ),
    ],
)
def test_day_labels_thin_out_as_the_range_grows(start, days, labels):
    range_days = [start + timedelta(days=n) for n in range(days)]

    assert [tick.label for tick in x_ticks(range_days, 2.0)] == labels


# The page.


def test_the_page_shows_totals_a_chart_and_a_table_per_dimension(admin_client, ledger):
    response = admin_client.get(DASHBOARD, RANGE)

    assert response.status_code == 200
    page = response.text
    assert '<div class="breadcrumbs">' in page and "&rsaquo; Usage\n</div>" in page
    assert 'id="usage-spend">$11.20 + 2 unpriced calls<' in page
    assert "2 unpriced calls (an unpriced model, or no token counts reported)" in page
    for dimension in ("model", "provider", "user", "group", "client"):
        assert f'id="chart-{dimension}"' in page
    assert page.count("<svg viewBox=") == 5
    assert "<title>2026-03-03 · Alpha: $4.00</title>" in page
    assert f"user #{ledger['dave_id']}" in page
    assert f'href="{CSV}?start=2026-03-02&amp;end=2026-03-05"' in page
    # Nothing inline for the policy to refuse.
    assert " style=" not in page and "<style" not in page and "<script>" not in page


def test_unpriced_calls_read_unpriced_in_the_legend_and_table_never_as_zero(admin_client, ledger):
    response = admin_client.get(DASHBOARD, RANGE)

    [by_model] = [
        b.rows for b in response.context["report"].breakdowns if b.dimension.name == "model"
    ]
    shown = {row.label: (row.total, row.amounts.cost_text) for row in by_model}
    assert shown == {
        "Alpha": ("$6.50 + 1 unpriced call", "$6.50 + 1 unpriced call"),
        "Beta": ("$4.70", "$4.70"),
        "Gamma": ("unpriced", "unpriced"),
    }
    page = response.text
    assert (
        '<span class="legend-label">Gamma</span> <span class="legend-total">unpriced</span>' in page
    )
    assert '<td class="number">unpriced</td>' in page
    assert "$0.00" not in page


def test_the_default_range_is_the_last_30_days_ending_today(admin_client):
    today = timezone.localdate()

    response = admin_client.get(DASHBOARD)

    found = response.context["report"]
    assert (found.start, found.end, found.metric) == (today - timedelta(days=29), today, "cost")
    assert f'value="{today.isoformat()}"' in response.text
    assert "No usage in this range." in response.text


def test_a_range_of_366_days_is_shown(admin_client):
    response = admin_client.get(DASHBOARD, {"start": "2024-01-01", "end": "2024-12-31"})

    assert response.context["report"].days == 366


@pytest.mark.parametrize(
    ("query", "field", "error"),
    [
        ({"start": "2026-03-10", "end": "2026-03-01"}, "end", "The end is before the start."),
        ({"start": "2025-01-01", "end": "2026-01-02"}, "end", "At most 366 days at a time."),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "start", "Enter a valid date."),
        ({"start": "<b>soon</b>", "end": "2026-03-01"}, "start", "Enter a valid date."),
        ({"start": "", "end": "2026-03-01"}, "start", "This field is required."),
        ({"metric": "bananas"}, "metric", "Select a valid choice."),
    ],
)
def test_a_bad_range_shows_its_error_on_the_field_keeps_the_input_and_charts_nothing(
    admin_client, ledger, query, field, error
):
    response = admin_client.get(DASHBOARD, query)

    assert response.status_code == 200
    form = response.context["form"]
    assert [message for message in form.errors[field] if message.startswith(error[:-1])]
    assert response.context["report"] is None
    page = response.text
    assert "usage-chart" not in page and "Download CSV" not in page
    for name, value in query.items():
        if name != "metric":
            escaped = value.replace("<", "&lt;").replace(">", "&gt;")
            assert f'name="{name}" value="{escaped}"' in page or not value


# The CSV.


def csv_rows(response) -> list[list[str]]:
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_csv_has_one_row_per_daily_sum_with_a_deleted_user_by_id(admin_client, ledger):
    response = admin_client.get(CSV, RANGE)

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "llmadmin-usage-2026-03-02-2026-03-05.csv" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0] == [
        "day",
        "user",
        "group",
        "provider",
        "provider account",
        "model identifier",
        "model",
        "client",
        "calls",
        "long-context calls",
        "input tokens",
        "output tokens",
        "cache read tokens",
        "cache write tokens",
        "reasoning tokens",
        "cost",
        "currency",
        "unpriced calls",
    ]
    assert len(rows) == 1 + DailyUsage.objects.count() == 7
    alpha = ledger["alpha"]
    dave = f"user #{ledger['dave_id']}"
    assert rows[1] == [
        "2026-03-02",
        "alice",
        "red",
        "Anthropic",
        "Anthropic",
        alpha.identifier,
        "Alpha",
        "Chat (the /agents/ page)",
        "2",
        "0",
        "1000000",
        "500000",
        "0",
        "0",
        "0",
        "2.00",
        "USD",
        "1",
    ]
    assert [row[1:3] for row in rows[2:]] == [
        [dave, "red"],
        ["alice", "red"],
        ["bob", "blue"],
        ["carol", ""],
        ["carol", ""],
    ]


def test_the_csv_has_a_row_per_client_of_a_day(admin_client, ledger, gateway_calls):
    header, *rows = csv_rows(admin_client.get(CSV, {"start": "2026-03-03", "end": "2026-03-03"}))
    rows = [dict(zip(header, row, strict=True)) for row in rows]

    alice = [(row["client"], row["calls"], row["cost"]) for row in rows if row["user"] == "alice"]
    assert sorted(alice) == [
        ("Chat (the /agents/ page)", "1", "0.70"),
        ("OpenAI/Python", "1", "1.00"),
        ("claude-cli", "1", "2.00"),
    ]


def test_the_csv_leaves_an_unpriced_cost_empty_and_counts_the_unpriced_calls(admin_client, ledger):
    header, *rows = csv_rows(admin_client.get(CSV, RANGE))
    rows = [dict(zip(header, row, strict=True)) for row in rows]

    gamma = next(row for row in rows if row["model"] == "Gamma")
    assert (gamma["cost"], gamma["currency"], gamma["unpriced calls"]) == ("", "USD", "1")
    # What a spreadsheet sums: the known costs, and beside them how many calls have none.
    assert sum(Decimal(row["cost"]) for row in rows if row["cost"]) == Decimal("11.20")
    assert sum(int(row["unpriced calls"]) for row in rows) == 2
    assert {row["currency"] for row in rows} == {"USD"}


def test_long_context_calls_are_counted_on_the_page_in_the_csv_and_by_a_rebuild(
    admin_client, django_user_model
):
    erin = django_user_model.objects.create_user("erin")
    delta = LLMModelFactory(
        provider=ProviderFactory(google=True),
        display_name="Delta",
        input_price=Decimal(1),
        output_price=Decimal(2),
        long_context_input_price=Decimal(2),
        long_context_output_price=Decimal(4),
    )
    call(erin, delta, DAY1, (300_000, 0))  # over 200k: $0.60 at the long-context prices
    call(erin, delta, DAY1, (100_000, 0))  # $0.10

    page = admin_client.get(DASHBOARD, RANGE).text
    header, row = csv_rows(admin_client.get(CSV, RANGE))
    [by_model] = next(b for b in report().breakdowns if b.dimension.name == "model").rows

    assert 'id="usage-spend">$0.70<' in page
    assert "1 call had a prompt long enough to be costed at long-context prices" in page
    assert (by_model.amounts.long_context_calls, by_model.amounts.cost) == (1, Decimal("0.7"))
    csv_row = dict(zip(header, row, strict=True))
    assert (csv_row["long-context calls"], csv_row["cost"]) == ("1", "0.70")
    DailyUsage.objects.update(long_context_calls=0)
    assert rebuild("--check")[1] == 1
    rebuild()
    assert DailyUsage.objects.get().long_context_calls == 1


def test_the_csv_never_starts_a_text_cell_with_a_formula(admin_client, django_user_model):
    user = django_user_model.objects.create_user("=HYPERLINK(1)")
    user.groups.add(Group.objects.create(name="+team"))
    account = ProviderFactory(anthropic=True, name="=cmd|' /C calc'!A0")
    model = LLMModelFactory(
        provider=account, display_name="-model", identifier="@model", input_price=1
    )
    call(user, model, DAY1, (M, 0))

    rows = csv_rows(admin_client.get(CSV, RANGE))

    assert rows[1][1:7] == [
        "'=HYPERLINK(1)",
        "'+team",
        "Anthropic",
        "'=cmd|' /C calc'!A0",
        "'@model",
        "'-model",
    ]


def test_the_csv_of_a_bad_range_sends_back_to_the_dashboard(admin_client):
    response = admin_client.get(CSV, {"start": "2026-03-10", "end": "2026-03-01"})

    assert response.status_code == 302
    assert response["Location"] == f"{DASHBOARD}?start=2026-03-10&end=2026-03-01"


# Who may see it.


@pytest.mark.parametrize("url", [DASHBOARD, CSV])
def test_staff_without_the_view_permission_are_refused(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))

    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [DASHBOARD, CSV])
def test_staff_with_the_view_permission_see_it(client, django_user_model, url):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_dailyusage"))
    client.force_login(staff)

    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", [DASHBOARD, CSV])
def test_anonymous_visitors_are_sent_to_log_in(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_the_admin_index_lists_usage_to_view_and_nothing_to_add(admin_client):
    page = admin_client.get(reverse("admin:index")).text

    assert f'<a href="{DASHBOARD}">Usage</a>' in page
    assert "/admin/llmadmin/dailyusage/add/" not in page


def test_a_daily_row_has_no_page_of_its_own(admin_client, ledger):
    row = DailyUsage.objects.first()

    assert admin_client.get(f"{DASHBOARD}{row.pk}/change/").status_code == 404


# A constant number of queries.

# the session with its user; sums by key; series by day; labels of models, accounts,
# users, groups
QUERIES = 7


def test_the_page_runs_the_same_queries_for_a_little_and_for_much_more_data(
    admin_client, ledger, django_user_model, django_assert_num_queries
):
    wide = {"start": "2026-01-01", "end": "2026-03-31", "metric": "tokens"}
    with django_assert_num_queries(QUERIES):
        assert admin_client.get(DASHBOARD, wide).status_code == 200

    groups = [Group.objects.create(name=f"team {n}") for n in range(12)]
    accounts = [ProviderFactory(openai_compat=True, name=f"vLLM {n}") for n in range(12)]
    models = [
        LLMModelFactory(provider=account, display_name=f"More {n}", input_price=1, output_price=1)
        for n, account in enumerate(accounts)
    ]
    for n in range(12):
        user = django_user_model.objects.create_user(f"more-{n}")
        user.groups.add(groups[n])
        for m, model in enumerate(models):
            call(user, model, date(2026, 1, 1) + timedelta(days=n * 7 + m), (1000 * m, 10))

    for n in range(12):
        call(user, models[0], date(2026, 2, 1), (10, 10), f"tool-{n}/1.0")

    with django_assert_num_queries(QUERIES):
        response = admin_client.get(DASHBOARD, wide)
    breakdowns = response.context["report"].breakdowns
    # Accounts, developers and clients beyond the top eight.
    assert [breakdowns[n].rows[-1].label for n in (1, 2, 4)] == ["Other"] * 3


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's index of the sums by key")
def test_sqlite_reads_the_sums_by_key_from_their_index_alone_without_sorting(admin_client, ledger):
    # Every column the sums by key read is in the index (a column added to them and not to
    # the index would make SQLite read the table's rows again), in the order of their keys.
    with CaptureQueriesContext(connection) as captured:
        admin_client.get(DASHBOARD, {"start": "2026-01-01", "end": "2026-12-31"})
    sums_by_key = next(q["sql"] for q in captured if "INDEXED BY daily_usage_by_key" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sums_by_key}")
        plan = " / ".join(row[-1] for row in cursor.fetchall())
    assert "COVERING INDEX daily_usage_by_key" in plan
    assert "TEMP B-TREE" not in plan


# usage_rebuild.


def daily_sums() -> list[dict[str, object]]:
    return [
        {**row, "cost": Decimal(row["cost"]).quantize(Decimal("1e-8"))}
        for row in DailyUsage.objects.order_by(
            "day", "user_id", "model_id", "group_id", "client_product"
        ).values(
            "day",
            "user_id",
            "group_id",
            "model_id",
            "client_product",
            "provider_id",
            "provider_type",
            "calls",
            "uncosted_calls",
            "long_context_calls",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost",
        )
    ]


def rebuild(*args: str) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("usage_rebuild", *args, stdout=out)
    except SystemExit as exit:
        return out.getvalue(), exit.code
    return out.getvalue(), 0


def test_usage_rebuild_reproduces_the_daily_sums_from_the_ledger(ledger):
    kept = daily_sums()
    DailyUsage.objects.filter(day=DAY1).delete()
    DailyUsage.objects.filter(day=DAY2).update(calls=99, cost=Decimal(1))

    out, code = rebuild()

    assert (out, code) == ("Daily usage rebuilt from the ledger: 6 rows.\n", 0)
    assert daily_sums() == kept


def test_usage_rebuild_check_finds_nothing_when_the_sums_match(ledger, gateway_calls):
    assert rebuild("--check") == ("The daily sums match the ledger.\n", 0)


def test_usage_rebuild_keeps_each_clients_sums_apart(ledger, gateway_calls):
    kept = daily_sums()
    alice, alpha = ledger["alice"], ledger["alpha"]
    DailyUsage.objects.filter(client_product="claude-cli").delete()

    out, code = rebuild("--check")

    red = Group.objects.get(name="red").pk
    assert (out.splitlines()[0], code) == (
        f"2026-03-03 user #{alice.pk} model #{alpha.pk} client 'claude-cli' group #{red}: "
        "in the ledger, no daily sums",
        1,
    )
    assert rebuild() == ("Daily usage rebuilt from the ledger: 10 rows.\n", 0)
    assert daily_sums() == kept


def old_record(user: User, model: LLMModel) -> None:
    """A call recorded before accounts: it names none (and has no daily sums yet)."""
    UsageRecord.objects.create(
        day=DAY1,
        user_id=user.pk,
        model=model,
        provider_type=model.provider.type,
        model_identifier=model.identifier,
        pricing=Pricing.UNREPORTED,
    )


def test_usage_rebuild_gives_records_without_an_account_their_models(ledger, two_accounts):
    vllm = two_accounts["vllm"]
    on_vllm = LLMModel.objects.get(provider=vllm)
    old_record(ledger["bob"], on_vllm)
    old_record(ledger["bob"], ledger["gamma"])
    gamma_id = ledger["gamma"].pk
    ledger["gamma"].delete()

    rebuild()

    bobs = DailyUsage.objects.filter(user_id=ledger["bob"].pk, day=DAY1)
    assert dict(bobs.values_list("model_id", "provider_id")) == {
        on_vllm.pk: vllm.pk,
        gamma_id: None,  # its model is gone: the account is unknown
    }
    assert rebuild("--check") == ("The daily sums match the ledger.\n", 0)


def test_usage_rebuild_check_reports_each_difference_and_exits_1(ledger):
    bob, carol = ledger["bob"], ledger["carol"]
    DailyUsage.objects.filter(user_id=bob.pk).update(calls=5, cost=Decimal("4.01"))
    DailyUsage.objects.filter(user_id=carol.pk, model_id=ledger["gamma"].pk).delete()
    DailyUsage.objects.create(
        day=DAY3, user_id=bob.pk, model_id=ledger["beta"].pk, provider_type="openai", calls=1
    )
    kept = daily_sums()

    out, code = rebuild("--check")

    gamma, beta, alpha = ledger["gamma"].pk, ledger["beta"].pk, ledger["alpha"].pk
    blue = Group.objects.get(name="blue").pk
    assert code == 1
    assert out.splitlines() == [
        f"2026-03-03 user #{bob.pk} model #{alpha} group #{blue}: calls 1 in the ledger, "
        "5 in the sums; cost 4.0000000000 in the ledger, 4.0100000000 in the sums",
        f"2026-03-05 user #{bob.pk} model #{beta} no group: daily sums, no calls in the ledger",
        f"2026-03-05 user #{carol.pk} model #{gamma} no group: in the ledger, no daily sums",
        "3 differences between the ledger and the daily sums.",
    ]
    assert daily_sums() == kept  # --check writes nothing
