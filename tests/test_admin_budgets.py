"""Budgets and the ledger in the admin: group allowances, developers' budgets with their alert
column and override, the read-only ledger, a model's cap and price history."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from billing.ledger import usage_record
from billing.models import GroupBudget, UsageRecord, UserBudget
from llmadmin.models import LLMModel
from llmadmin.providers.contract import Usage
from tests.factories import LLMModelFactory

pytestmark = pytest.mark.django_db

PRICES = {"input_price": Decimal("3"), "output_price": Decimal("15")}
DEVELOPERS = reverse("admin:billing_developerbudget_changelist")
LEDGER = reverse("admin:billing_usagerecord_changelist")


@pytest.fixture(autouse=True)
def mid_november():
    with time_machine.travel(datetime(2026, 11, 20, 9, tzinfo=UTC), tick=False):
        yield


def spend_dollars(user: User, model: LLMModel, dollars: int) -> None:
    """Calls of a million input tokens at $3 (and no output): $3 each."""
    for _ in range(dollars // 3):
        usage_record(
            user_id=user.pk, model=model, called_at=datetime.now(UTC), usage=Usage(1_000_000, 0)
        )


def team(name: str, allowance: str, *members: User) -> Group:
    group = Group.objects.create(name=name)
    group.user_set.add(*members)
    GroupBudget.objects.create(group=group, monthly_allowance=Decimal(allowance))
    return group


def row_of(html: str, username: str) -> str:
    """The changelist row that names this user, as text."""
    start = html.index(f">{username}</a></th>")
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def test_an_admin_gives_a_group_a_monthly_allowance(admin_client):
    group = Group.objects.create(name="backend")

    response = admin_client.post(
        reverse("admin:billing_groupbudget_add"),
        {"group": group.pk, "monthly_allowance": "50"},
    )

    assert response.status_code == 302
    assert GroupBudget.objects.get().monthly_allowance == Decimal(50)
    entry = LogEntry.objects.get_for_object(GroupBudget.objects.get()).get()
    assert entry.changes_dict["monthly_allowance"] == [None, "50"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param(
            "back\u202eend",
            "Remove the text-direction control U+202E: it reorders the text.",
            id="right-to-left override",
        ),
        pytest.param(
            "back\u200dend",
            "Remove the zero-width character U+200D: it is invisible in the text.",
            id="zero-width joiner",
        ),
    ],
)
def test_a_group_name_that_reorders_or_hides_text_is_refused_on_its_field(
    admin_client, name, error
):
    response = admin_client.post(reverse("admin:auth_group_add"), {"name": name})

    assert response.context["adminform"].form.errors == {"name": [error]}
    assert not Group.objects.exists()


def test_a_group_name_in_any_script_is_taken(admin_client):
    admin_client.post(reverse("admin:auth_group_add"), {"name": "Modèle 日本 نموذج"})

    assert Group.objects.get().name == "Modèle 日本 نموذج"


def test_a_negative_allowance_is_a_field_error_that_keeps_the_input(admin_client):
    group = Group.objects.create(name="backend")

    response = admin_client.post(
        reverse("admin:billing_groupbudget_add"),
        {"group": group.pk, "monthly_allowance": "-5"},
    )

    form = response.context["adminform"].form
    assert list(form.errors) == ["monthly_allowance"]
    assert form["monthly_allowance"].value() == "-5"
    assert form["group"].value() == str(group.pk)
    assert GroupBudget.objects.count() == 0


def test_the_developer_list_shows_allowance_spend_and_alerts(admin_client):
    model = LLMModelFactory(**PRICES)
    calm, close, spent = (User.objects.create_user(name) for name in ("calm", "close", "spent"))
    team("backend", "10", calm, close, spent)
    UserBudget.objects.create(user=spent, monthly_allowance=Decimal(6))
    spend_dollars(calm, model, 3)
    spend_dollars(close, model, 9)
    spend_dollars(spent, model, 6)

    html = admin_client.get(DEVELOPERS).text

    assert "$10.00 (group backend)" in row_of(html, "calm")
    assert "$3.00" in row_of(html, "calm")
    assert "budget-alert" not in row_of(html, "calm")
    assert "90 % spent" in row_of(html, "close")
    assert "$1.00" in row_of(html, "close")
    assert "$6.00 (own override)" in row_of(html, "spent")
    assert 'class="budget-alert budget-spent">Spent' in row_of(html, "spent")
    assert "No limit (no budget)" in row_of(html, "admin")


def test_the_developer_list_sorts_by_spend_this_month(admin_client):
    model = LLMModelFactory(**PRICES)
    for name, dollars in (("ann", 9), ("bob", 3), ("cat", 6)):
        spend_dollars(User.objects.create_user(name), model, dollars)

    # list_display[2], spent this month, descending.
    html = admin_client.get(DEVELOPERS, {"o": "-2"}).text

    order = sorted(("ann", "bob", "cat", "admin"), key=lambda name: html.index(f">{name}</a>"))
    assert order == ["ann", "cat", "bob", "admin"]


def test_the_spent_filter_lists_those_alerted_this_month(
    admin_client, django_capture_on_commit_callbacks
):
    model = LLMModelFactory(**PRICES)
    calm, spent = User.objects.create_user("calm"), User.objects.create_user("spent")
    team("backend", "3", calm, spent)
    with django_capture_on_commit_callbacks(execute=True):  # alerts follow the commit
        spend_dollars(spent, model, 3)

    html = admin_client.get(DEVELOPERS, {"budget": "spent"}).text

    assert ">spent</" in html
    assert ">calm</" not in html


@pytest.mark.parametrize("developers", [2, 20])
def test_the_developer_list_runs_a_constant_number_of_queries(
    admin_client, django_assert_num_queries, developers
):
    model = LLMModelFactory(**PRICES)
    group = team("backend", "10")
    for index in range(developers):
        user = User.objects.create_user(f"dev{index}")
        user.groups.add(group)
        spend_dollars(user, model, 3)

    # the session with its user, the groups filter, count, total count, the users with their
    # override and spend, their groups with their budgets
    with django_assert_num_queries(6):
        admin_client.get(DEVELOPERS)


def override_form(developer: User) -> dict[str, object]:
    """The management forms of the override inlines on a developer's budget page (their own
    budget, their own limits), empty."""
    return {
        "budget-TOTAL_FORMS": "1",
        "budget-INITIAL_FORMS": "0",
        "budget-MIN_NUM_FORMS": "0",
        "budget-MAX_NUM_FORMS": "1",
        "budget-0-user": developer.pk,
        "limits-TOTAL_FORMS": "0",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
    }


def test_a_developers_own_page_shows_their_budget_this_month(admin_client):
    developer = User.objects.create_user("dev")
    team("backend", "10", developer)
    spend_dollars(developer, LLMModelFactory(**PRICES), 9)

    html = admin_client.get(
        reverse("admin:billing_developerbudget_change", args=[developer.pk])
    ).text

    assert "$10.00 (group backend)" in html
    assert "$9.00" in html
    assert "$1.00" in html
    assert "90 % spent" in html


def test_an_admin_sets_and_clears_a_developers_override(admin_client):
    developer = User.objects.create_user("dev")
    url = reverse("admin:billing_developerbudget_change", args=[developer.pk])
    inline = override_form(developer)

    assert admin_client.post(url, {**inline, "budget-0-monthly_allowance": "25"}).status_code == 302
    assert UserBudget.objects.get(user=developer).monthly_allowance == Decimal(25)
    budget = UserBudget.objects.get()
    inline |= {"budget-INITIAL_FORMS": "1", "budget-0-id": budget.pk}
    admin_client.post(url, {**inline, "budget-0-monthly_allowance": "", "budget-0-DELETE": "on"})

    assert UserBudget.objects.count() == 0
    assert User.objects.filter(username="dev").exists()  # the user is not touched


@pytest.mark.parametrize(
    ("typed", "stored", "error_on"),
    [
        pytest.param({"budget-0-no_limit": "on"}, [None], None, id="no limit"),
        pytest.param({"budget-0-monthly_allowance": "0"}, [Decimal(0)], None, id="zero"),
        pytest.param(
            {"budget-0-monthly_allowance": "5", "budget-0-no_limit": "on"},
            [],
            "no_limit",
            id="an amount and no limit",
        ),
        pytest.param({"budget-0-monthly_allowance": ""}, [], None, id="nothing: no override"),
        pytest.param({"budget-0-monthly_allowance": "-1"}, [], "monthly_allowance", id="negative"),
    ],
)
def test_an_override_is_an_amount_or_no_limit(admin_client, typed, stored, error_on):
    developer = User.objects.create_user("dev")
    team("backend", "5", developer)
    url = reverse("admin:billing_developerbudget_change", args=[developer.pk])
    inline = override_form(developer)

    response = admin_client.post(url, {**inline, **typed})

    assert list(UserBudget.objects.values_list("monthly_allowance", flat=True)) == stored
    if error_on:
        formset = response.context["inline_admin_formsets"][0]  # their own budget's
        assert list(formset.formset.forms[0].errors) == [error_on]
        html = response.content.decode()
        assert 'value="5"' in html or 'value="-1"' in html  # what was typed stays
    else:
        assert response.status_code == 302


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            "/admin/llmadmin/usagerecord/?pricing__exact=priced&o=2",
            "/admin/billing/usagerecord/?pricing__exact=priced&o=2",
            id="the ledger, filtered",
        ),
        pytest.param(
            "/admin/llmadmin/usagerecord/7/change/",
            "/admin/billing/usagerecord/7/change/",
            id="a ledger record",
        ),
        pytest.param(
            "/admin/llmadmin/dailyusage/?start=2026-11-01&end=2026-11-20&metric=tokens",
            "/admin/billing/dailyusage/?start=2026-11-01&end=2026-11-20&metric=tokens",
            id="the dashboard",
        ),
        pytest.param(
            "/admin/llmadmin/dailyusage/csv/?start=2026-11-01",
            "/admin/billing/dailyusage/csv/?start=2026-11-01",
            id="the dashboard's CSV",
        ),
        pytest.param(
            "/admin/llmadmin/developerbudget/?budget=spent",
            "/admin/billing/developerbudget/?budget=spent",
            id="the developer budgets",
        ),
        pytest.param(
            "/admin/llmadmin/groupbudget/add/",
            "/admin/billing/groupbudget/add/",
            id="a group budget",
        ),
    ],
)
def test_the_pages_addresses_from_before_the_billing_app_lead_to_them_for_good(
    admin_client, old, new
):
    response = admin_client.get(old)

    assert (response.status_code, response["Location"]) == (301, new)


def test_the_catalogs_own_admin_pages_stay_where_they_are(admin_client):
    assert admin_client.get("/admin/llmadmin/llmmodel/").status_code == 200


def test_a_ledger_record_has_a_read_only_page(admin_client):
    model = LLMModelFactory(**PRICES)
    developer = User.objects.create_user("dev")
    spend_dollars(developer, model, 3)
    record = UsageRecord.objects.get()

    response = admin_client.get(reverse("admin:billing_usagerecord_change", args=[record.pk]))

    assert response.status_code == 200
    assert model.identifier in response.content.decode()
    assert "<select" not in response.content.decode().split('id="content-main"')[1]


def test_the_ledger_is_read_only_and_keeps_deleted_users(admin_client):
    model = LLMModelFactory(**PRICES)
    leaver = User.objects.create_user("leaver")
    spend_dollars(leaver, model, 3)
    leaver_id = leaver.pk
    leaver.delete()
    record = UsageRecord.objects.get()

    html = admin_client.get(LEDGER).text
    change = reverse("admin:billing_usagerecord_change", args=[record.pk])

    assert f"user #{leaver_id}" in html
    assert "$3" in html
    assert admin_client.post(change, {"cost": "0"}).status_code == 403
    assert admin_client.get(reverse("admin:billing_usagerecord_add")).status_code == 403
    assert UsageRecord.objects.get().cost == Decimal(3)


def test_the_ledger_shows_the_price_tier_of_each_call(admin_client):
    model = LLMModelFactory(
        **PRICES, long_context_input_price=Decimal(6), long_context_output_price=Decimal(30)
    )
    developer = User.objects.create_user("dev")
    for prompt in (300_000, 1_000):
        usage_record(
            user_id=developer.pk, model=model, called_at=datetime.now(UTC), usage=Usage(prompt, 0)
        )

    html = admin_client.get(LEDGER).text

    assert html.count('<td class="field-price_tier">Long context</td>') == 1
    assert html.count('<td class="field-price_tier">Base</td>') == 1


def test_a_developer_without_staff_rights_sees_no_budget_page(client):
    client.force_login(User.objects.create_user("dev", is_staff=False))

    assert client.get(DEVELOPERS).status_code == 302  # to the admin's login


def test_a_models_cap_and_new_prices_are_saved_and_its_price_history_shown(admin_client):
    model = LLMModelFactory(**PRICES, identifier="claude-sonnet-4-6")
    url = reverse("admin:llmadmin_llmmodel_change", args=[model.pk])
    data = {
        "provider": model.provider_id,
        "identifier": model.identifier,
        "display_name": model.display_name,
        "enabled": "on",
        "context_limit": "200000",
        "compression_threshold": "70",
        "input_price": "6",
        "output_price": "15",
        "long_context_input_price": "12",
        "monthly_cap": "20",
    }

    with time_machine.travel(datetime(2026, 11, 21, 8, tzinfo=UTC), tick=False):
        assert admin_client.post(url, data).status_code == 302
    html = admin_client.get(url).text

    model.refresh_from_db()
    assert (model.input_price, model.monthly_cap) == (Decimal(6), Decimal(20))
    row = "<td>{}</td><td>{}</td><td>15</td><td>unpriced</td><td>unpriced</td><td>{}</td>"
    assert row.format("2026-11-21 08:00", 6, 12) in html
    assert row.format("2026-11-20 09:00", 3, "unpriced") in html


def test_a_negative_cap_is_a_field_error(admin_client):
    model = LLMModelFactory(**PRICES)
    url = reverse("admin:llmadmin_llmmodel_change", args=[model.pk])

    response = admin_client.post(
        url,
        {
            "provider": model.provider_id,
            "identifier": model.identifier,
            "display_name": model.display_name,
            "context_limit": "200000",
            "compression_threshold": "70",
            "monthly_cap": "-1",
        },
    )

    assert list(response.context["adminform"].form.errors) == ["monthly_cap"]


def test_staff_need_the_view_permission_for_the_ledger():
    staff = User.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)

    assert client.get(LEDGER).status_code == 403
