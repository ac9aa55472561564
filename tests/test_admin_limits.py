"""Limits in the admin: group limits, a developer's own limits beside their own budget, and
each developer's limits in effect, with where each comes from."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from billing.models import DeveloperLimits, GroupLimits

pytestmark = pytest.mark.django_db

GROUP_LIMITS = reverse("admin:billing_grouplimits_changelist")
GROUP_LIMITS_ADD = reverse("admin:billing_grouplimits_add")
DEVELOPERS = reverse("admin:billing_developerbudget_changelist")


def developer_page(developer: User) -> str:
    return reverse("admin:billing_developerbudget_change", args=[developer.pk])


def team(name: str, *members: User, **limits: int) -> Group:
    group = Group.objects.create(name=name)
    group.user_set.add(*members)
    if limits:
        GroupLimits.objects.create(group=group, **limits)
    return group


def row_of(html: str, text: str) -> str:
    """The changelist row whose link reads this text."""
    start = html.index(f">{text}</a></th>")
    return html[html.rindex("<tr", 0, start) : html.index("</tr>", start)]


def limits_inline(developer: User, limits: DeveloperLimits | None = None, **typed: str) -> dict:
    """A developer's page as posted: their own budget left alone, their own limits as typed."""
    return {
        "budget-TOTAL_FORMS": "1",
        "budget-INITIAL_FORMS": "0",
        "budget-MIN_NUM_FORMS": "0",
        "budget-MAX_NUM_FORMS": "1",
        "budget-0-user": developer.pk,
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "1" if limits else "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-user": developer.pk,
        **({"limits-0-id": limits.pk} if limits else {}),
        **{f"limits-0-{name}": value for name, value in typed.items()},
    }


def test_an_admin_gives_a_group_limits(admin_client):
    group = Group.objects.create(name="backend")

    response = admin_client.post(
        GROUP_LIMITS_ADD,
        {"group": group.pk, "concurrent_turns": "3", "tokens_per_minute": "100000"},
    )

    assert response.status_code == 302
    limits = GroupLimits.objects.get()
    assert (limits.group, limits.concurrent_turns, limits.requests_per_minute) == (group, 3, None)
    assert limits.tokens_per_minute == 100_000


def test_the_group_limits_list_shows_no_limit_for_empty_ones_and_the_members(admin_client):
    team("backend", *(User.objects.create_user(f"dev{i}") for i in range(3)), concurrent_turns=2)
    team("research", requests_per_minute=60, tokens_per_minute=250_000)

    html = admin_client.get(GROUP_LIMITS).text

    cells = r'<td class="field-{}">{}</td>'
    backend, research = row_of(html, "backend"), row_of(html, "research")
    assert cells.format("concurrent", "2") in backend
    assert cells.format("requests", "No limit") in backend
    assert cells.format("member_count", "3") in backend
    assert cells.format("concurrent", "No limit") in research
    assert cells.format("tokens", "250,000") in research


def test_the_group_limits_list_finds_a_group_by_name(admin_client):
    team("backend", concurrent_turns=2)
    team("research", concurrent_turns=4)

    html = admin_client.get(GROUP_LIMITS, {"q": "resea"}).text

    assert ">research</a>" in html
    assert ">backend</a>" not in html


def test_the_group_field_finds_groups_as_the_admin_types(admin_client):
    team("backend")
    team("research")

    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "billing",
            "model_name": "grouplimits",
            "field_name": "group",
            "term": "back",
        },
    )

    assert [result["text"] for result in response.json()["results"]] == ["backend"]


@pytest.mark.parametrize(
    ("typed", "field", "error"),
    [
        pytest.param(
            {"concurrent_turns": "0", "requests_per_minute": "60"},
            "concurrent_turns",
            "Enter 1 or more, or leave it empty for no limit.",
            id="zero",
        ),
        pytest.param(
            {"requests_per_minute": "-5", "tokens_per_minute": "1000"},
            "requests_per_minute",
            "Enter 1 or more, or leave it empty for no limit.",
            id="negative",
        ),
        pytest.param(
            {"tokens_per_minute": "lots", "concurrent_turns": "2"},
            "tokens_per_minute",
            "Enter a whole number, or leave it empty for no limit.",
            id="words",
        ),
        pytest.param(
            {"tokens_per_minute": "1.5", "concurrent_turns": "2"},
            "tokens_per_minute",
            "Enter a whole number, or leave it empty for no limit.",
            id="fraction",
        ),
        pytest.param(
            {"tokens_per_minute": "9" * 30, "concurrent_turns": "2"},
            "tokens_per_minute",
            "Ensure this value is less than or equal to",
            id="too large",
        ),
        pytest.param(
            {"concurrent_turns": "", "tokens_per_minute": ""},
            "__all__",
            "Set at least one limit, or delete these limits.",
            id="none set",
        ),
    ],
)
def test_a_wrong_group_limit_is_an_error_on_its_field_that_keeps_what_was_typed(
    admin_client, typed, field, error
):
    group = team("backend")

    response = admin_client.post(GROUP_LIMITS_ADD, {"group": group.pk, **typed})

    form = response.context["adminform"].form
    assert list(form.errors) == [field]
    assert form.errors[field][0].startswith(error)
    assert form["group"].value() == str(group.pk)
    for name, value in typed.items():
        assert form[name].value() == value
    assert not GroupLimits.objects.exists()


def test_a_group_with_limits_gets_no_second_set(admin_client):
    group = team("backend", concurrent_turns=2)

    response = admin_client.post(GROUP_LIMITS_ADD, {"group": group.pk, "concurrent_turns": "5"})

    assert response.context["adminform"].form.errors == {
        "group": ["This group has limits already: change those instead."]
    }
    assert GroupLimits.objects.get().concurrent_turns == 2


def test_an_admin_changes_and_deletes_a_groups_limits(admin_client):
    group = team("backend", concurrent_turns=2)
    limits = GroupLimits.objects.get()
    change = reverse("admin:billing_grouplimits_change", args=[limits.pk])

    admin_client.post(change, {"group": group.pk, "concurrent_turns": "", "tokens_per_minute": "9"})
    limits.refresh_from_db()
    assert (limits.concurrent_turns, limits.tokens_per_minute) == (None, 9)

    delete = reverse("admin:billing_grouplimits_delete", args=[limits.pk])
    admin_client.post(delete, {"post": "yes"})
    assert not GroupLimits.objects.exists()
    assert Group.objects.filter(name="backend").exists()


def test_an_admin_sets_changes_and_deletes_a_developers_own_limits(admin_client):
    developer = User.objects.create_user("dev")
    page = developer_page(developer)

    response = admin_client.post(page, limits_inline(developer, concurrent_turns="2"))
    assert response.status_code == 302
    limits = DeveloperLimits.objects.get(user=developer)
    assert (limits.concurrent_turns, limits.requests_per_minute) == (2, None)

    admin_client.post(page, limits_inline(developer, limits, requests_per_minute="30"))
    limits.refresh_from_db()
    assert (limits.concurrent_turns, limits.requests_per_minute) == (None, 30)

    admin_client.post(page, {**limits_inline(developer, limits), "limits-0-DELETE": "on"})
    assert not DeveloperLimits.objects.exists()
    assert User.objects.filter(username="dev").exists()


@pytest.mark.parametrize(
    ("typed", "field", "error"),
    [
        pytest.param({"concurrent_turns": "0"}, "concurrent_turns", "Enter 1 or more", id="zero"),
        pytest.param({"concurrent_turns": "-1"}, "concurrent_turns", "Enter 1 or more", id="neg"),
        pytest.param({"concurrent_turns": "two"}, "concurrent_turns", "whole number", id="words"),
    ],
)
def test_a_wrong_own_limit_is_an_error_on_its_field_that_keeps_what_was_typed(
    admin_client, typed, field, error
):
    developer = User.objects.create_user("dev")

    response = admin_client.post(
        developer_page(developer), limits_inline(developer, tokens_per_minute="500", **typed)
    )

    own_limits = response.context["inline_admin_formsets"][1].formset.forms[0]
    assert list(own_limits.errors) == [field]
    assert error in own_limits.errors[field][0]
    assert own_limits[field].value() == typed[field]
    assert own_limits["tokens_per_minute"].value() == "500"
    assert not DeveloperLimits.objects.exists()


def test_own_limits_emptied_are_refused_rather_than_kept_empty(admin_client):
    developer = User.objects.create_user("dev")
    limits = DeveloperLimits.objects.create(user=developer, concurrent_turns=2)

    response = admin_client.post(developer_page(developer), limits_inline(developer, limits))

    own_limits = response.context["inline_admin_formsets"][1].formset.forms[0]
    assert own_limits.non_field_errors() == [
        "Set at least one limit; to use the groups' limits, delete this developer's own."
    ]
    limits.refresh_from_db()
    assert limits.concurrent_turns == 2


def test_a_developers_page_shows_each_limit_and_where_it_comes_from(admin_client):
    developer = User.objects.create_user("dev")
    team("backend", developer, concurrent_turns=2, requests_per_minute=30)
    team("research", developer, requests_per_minute=60)
    DeveloperLimits.objects.create(user=developer, concurrent_turns=5)

    html = admin_client.get(developer_page(developer)).text

    assert (
        "Turns at once: 5 (own)<br>Requests per minute: 60 (group research)<br>"
        "Tokens per minute: no limit"
    ) in html


@pytest.mark.parametrize(
    ("groups", "own", "shown"),
    [
        pytest.param({}, {}, "No limits", id="none"),
        pytest.param(
            {"backend": {"tokens_per_minute": 50_000}},
            {},
            "Tokens per minute: 50,000 (group backend)",
            id="a group's",
        ),
        pytest.param(
            {"backend": {"concurrent_turns": 2}, "ai": {"concurrent_turns": 2}},
            {},
            "Turns at once: 2 (group ai)",
            id="equal groups: the first by name",
        ),
        pytest.param(
            {"backend": {"concurrent_turns": 8, "requests_per_minute": 60}},
            {"concurrent_turns": 1},
            "Turns at once: 1 (own) · Requests per minute: 60 (group backend)",
            id="own and a group's",
        ),
    ],
)
def test_the_developer_list_shows_each_ones_limits_and_where_they_come_from(
    admin_client, groups, own, shown
):
    developer = User.objects.create_user("dev")
    for name, limits in groups.items():
        team(name, developer, **limits)
    if own:
        DeveloperLimits.objects.create(user=developer, **own)

    html = admin_client.get(DEVELOPERS).text

    assert f'<td class="field-limits_summary">{shown}</td>' in row_of(html, "dev")


@pytest.mark.parametrize("developers", [2, 20])
def test_the_developer_list_reads_everyones_limits_in_a_constant_number_of_queries(
    admin_client, django_assert_num_queries, developers
):
    group = team("backend", concurrent_turns=2)
    for index in range(developers):
        user = User.objects.create_user(f"dev{index}")
        user.groups.add(group)
        DeveloperLimits.objects.create(user=user, tokens_per_minute=1000 + index)

    # the session with its user, the groups filter, count, total count, the users, their
    # budgets and limits
    with django_assert_num_queries(6):
        html = admin_client.get(DEVELOPERS).text

    last = f"Turns at once: 2 (group backend) · Tokens per minute: {1000 + developers - 1:,} (own)"
    assert last in html


@pytest.fixture
def viewer() -> Client:
    """Staff with the view permission only, on limits and on developers' budgets."""
    staff = User.objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="billing",
            codename__in=["view_grouplimits", "view_developerlimits", "view_developerbudget"],
        )
    )
    client = Client()
    client.force_login(staff)
    return client


def test_view_only_staff_see_limits_but_change_none(viewer):
    developer = User.objects.create_user("dev")
    group = team("backend", developer, concurrent_turns=2)
    limits = GroupLimits.objects.get()
    own = DeveloperLimits.objects.create(user=developer, tokens_per_minute=500)
    group_page = reverse("admin:billing_grouplimits_change", args=[limits.pk])

    assert "backend" in viewer.get(GROUP_LIMITS).text
    assert "Tokens per minute: 500 (own)" in viewer.get(DEVELOPERS).text
    page = viewer.get(developer_page(developer)).text
    assert "Turns at once: 2 (group backend)" in page
    assert 'name="limits-0-tokens_per_minute"' not in page  # shown, not a field

    refused = [
        viewer.post(GROUP_LIMITS_ADD, {"group": group.pk, "concurrent_turns": "9"}),
        viewer.post(group_page, {"group": group.pk, "concurrent_turns": "9"}),
        viewer.post(reverse("admin:billing_grouplimits_delete", args=[limits.pk]), {"post": "yes"}),
        viewer.post(developer_page(developer), limits_inline(developer, own, concurrent_turns="9")),
    ]

    assert [response.status_code for response in refused] == [403] * 4
    limits.refresh_from_db()
    own.refresh_from_db()
    assert (limits.concurrent_turns, own.concurrent_turns, own.tokens_per_minute) == (2, None, 500)


def test_a_groups_name_in_the_limits_shown_is_text_never_markup(admin_client):
    developer = User.objects.create_user("dev")
    team("<b>ops</b>", developer, concurrent_turns=2)

    listed = admin_client.get(DEVELOPERS).text
    page = admin_client.get(developer_page(developer)).text

    for html in (listed, page):
        assert "Turns at once: 2 (group &lt;b&gt;ops&lt;/b&gt;)" in html
        assert "<b>ops</b>" not in html
