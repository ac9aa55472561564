"""Money in one format wherever it is shown (pages, the API's display strings, refusals), and
a cost that is unknown shown as "unpriced", never as $0."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.urls import reverse

from billing.ledger import usage_record
from billing.models import GroupBudget, UserBudget
from llmadmin.models import LLMModel
from llmadmin.money import usd
from llmadmin.providers.contract import Usage
from tests.chat_api import post_chat
from tests.factories import LLMModelFactory

pytestmark = pytest.mark.django_db

PRICES = {"input_price": Decimal("3"), "output_price": Decimal("15")}


@pytest.fixture(autouse=True)
def mid_november():
    with time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False):
        yield


def call(user: User, model: LLMModel, input_tokens: int) -> None:
    """A call of that many input tokens (and no output): $3 a million at PRICES."""
    usage_record(
        user_id=user.pk, model=model, called_at=datetime.now(UTC), usage=Usage(input_tokens, 0)
    )


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        pytest.param("1234.56", "$1,234.56", id="thousands"),
        pytest.param("13.5", "$13.50", id="two places"),
        pytest.param("0.125", "$0.13", id="half up"),
        pytest.param("0", "$0.00", id="zero"),
        pytest.param("0.0042", "$0.0042", id="under a cent"),
        pytest.param("0.00995", "$0.01", id="a cent once rounded"),
        pytest.param("0.00003", "under $0.0001", id="under a hundredth of a cent"),
        pytest.param("-2.5", "-$2.50", id="negative"),
        pytest.param("-0.0042", "-$0.0042", id="negative under a cent"),
    ],
)
def test_an_amount_is_shown_in_the_one_format(amount, shown):
    assert usd(Decimal(amount)) == shown


def test_the_budget_admins_and_the_ledger_show_amounts_in_the_one_format(admin_client):
    model = LLMModelFactory(**PRICES)
    developer = User.objects.create_user("dev")
    group = Group.objects.create(name="backend")
    group.user_set.add(developer)
    GroupBudget.objects.create(group=group, monthly_allowance=Decimal(1250))
    call(developer, model, 1_500_000)  # $4.50
    call(developer, model, 1_400)  # $0.0042

    groups = admin_client.get(reverse("admin:billing_groupbudget_changelist")).text
    developers = admin_client.get(reverse("admin:billing_developerbudget_changelist")).text
    ledger = admin_client.get(reverse("admin:billing_usagerecord_changelist")).text

    assert '<td class="field-allowance">$1,250.00</td>' in groups
    assert '<td class="field-spent">$4.50</td>' in developers
    assert '<td class="field-remaining">$1,245.49</td>' in developers  # left: rounded down
    assert '<td class="field-cost_shown">$4.50</td>' in ledger
    assert '<td class="field-cost_shown">$0.0042</td>' in ledger


def test_a_refusal_shows_a_spend_under_a_cent_to_four_places(client, developer):
    model = LLMModelFactory(**PRICES)
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(0))
    call(developer, model, 1_400)  # $0.0042

    status, body = post_chat(client, {"model_id": model.pk, "message": "Hi"})

    assert status == 402
    assert json.loads(body)["detail"] == (
        "Your monthly budget of $0.00 is spent ($0.0042); it resets on 1 December 2026."
    )


def test_the_usage_api_gives_each_amount_as_a_number_and_as_shown(client, developer):
    priced = LLMModelFactory(**PRICES, display_name="Sonnet", monthly_cap=Decimal(2000))
    unpriced = LLMModelFactory(display_name="Fake Large")
    group = Group.objects.create(name="backend")
    group.user_set.add(developer)
    GroupBudget.objects.create(group=group, monthly_allowance=Decimal(1250))
    call(developer, priced, 1_500_000)  # $4.50
    call(developer, priced, 1_000)  # no output price needed: $0.003
    call(developer, unpriced, 1_000)
    call(developer, unpriced, 1_000)
    usage_record(user_id=developer.pk, model=priced, called_at=datetime.now(UTC), usage=None)

    usage = client.get(reverse("api-usage")).json()

    rows = {row["model"]: (row["cost"], row["cost_text"]) for row in usage["by_model"]}
    assert rows == {
        "Sonnet": ("4.5030", "$4.50 + 1 unpriced call"),
        "Fake Large": (None, "unpriced"),  # unknown, not zero
    }
    assert [row["cost_text"] for row in usage["by_day"]] == ["$4.50 + 3 unpriced calls"]
    budget = usage["budget"]
    assert (budget["spent"], budget["spent_text"]) == ("4.5030", "$4.50")
    assert budget["monthly_allowance_text"] == "$1,250.00"
    assert budget["remaining_text"] == "$1,245.49"  # $1,245.497 left: never rounded up
    [cap] = budget["model_caps"]
    assert (cap["monthly_cap_text"], cap["spent_text"], cap["remaining_text"]) == (
        "$2,000.00",
        "$4.50",
        "$1,245.49",
    )
    listed = client.get(reverse("api-models")).json()["budget"]
    assert listed["remaining_text"] == "$1,245.49"


def test_the_agents_page_shows_unpriced_calls_as_unpriced_not_as_zero(client, developer):
    LLMModelFactory(**PRICES)
    call(developer, LLMModelFactory(display_name="Fake Large"), 1_000)

    page = " ".join(client.get(reverse("agents")).content.decode().split())

    assert "<td>Fake Large</td>" in page and "<td>unpriced</td>" in page
    assert "$0.0000" not in page


@pytest.mark.parametrize(
    ("input_tokens", "sentence"),
    [
        pytest.param(
            1_033, "$0.0031 of your $10.00 monthly budget spent: $9.99 left", id="a little"
        ),
        pytest.param(
            3_332_300, "$10.00 of your $10.00 monthly budget spent: $0.0031 left", id="nearly all"
        ),
    ],
)
def test_the_usage_panel_never_shows_more_left_than_there_is(
    client, developer, input_tokens, sentence
):
    UserBudget.objects.create(user=developer, monthly_allowance=Decimal(10))
    call(developer, LLMModelFactory(**PRICES), input_tokens)

    panel = " ".join(client.get(reverse("agents-usage")).content.decode().split())

    assert sentence in panel
