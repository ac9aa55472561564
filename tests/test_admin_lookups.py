"""Every admin on the site, ours and the packages', filters its change list only by what it
declares: its list filters' parameters and its date hierarchy. Anything else, or a NUL, is a
400, for a staff user who may only look as for anyone. What names a row (an action's
selection, an autocomplete's value) is never looked up unless it can be a key."""

from __future__ import annotations

import html
import re

import pytest
from auditlog.cid import correlation_id
from django.contrib import admin
from django.contrib.admin import FieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_permission_codename
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db.models import DateTimeField
from django.test import Client, RequestFactory
from django.urls import resolve, reverse

from billing.models import DailyUsage, UsageRecord
from llmadmin.models import Provider
from tests.admin_forms import form_as_loaded
from tests.factories import LLMModelFactory, ProviderFactory

pytestmark = pytest.mark.django_db

# Its change list is the usage dashboard, which reads only its range form
# (tests/test_usage_dashboard.py): it filters nothing by the query string.
NOT_A_CHANGE_LIST = {DailyUsage}
ADMINS = [
    pytest.param(model, model_admin, id=model._meta.label)
    for model, model_admin in admin.site._registry.items()
    if model not in NOT_A_CHANGE_LIST
]
LOOKUPS = ["startswith", "regex", "contains"]
# An id no row has, past what SQLite can even be asked for.
PAST_64_BITS = str(2**63)


def changelist(model: type) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


@pytest.fixture
def viewer() -> Client:
    """Staff who may view every registered model, and change none."""
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    for model in admin.site._registry:
        content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
        codename = get_permission_codename("view", model._meta)
        user.user_permissions.add(
            Permission.objects.get(content_type=content_type, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def declared_parameters(model_admin: admin.ModelAdmin) -> list[str]:
    """What the admin's list filters take, built as its change list builds them."""
    request = RequestFactory().get("/")
    request.user = User(is_superuser=True)
    names = []
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type):  # a SimpleListFilter
            spec = item(request, {}, model_admin.model, model_admin)
        else:
            path, filter_class = item if isinstance(item, tuple) else (item, FieldListFilter.create)
            field = get_fields_from_path(model_admin.model, path)[-1]
            spec = filter_class(field, request, {}, model_admin.model, model_admin, field_path=path)
        names += spec.expected_parameters()
    return names


@pytest.mark.parametrize(("model", "model_admin"), ADMINS)
def test_no_undeclared_lookup_on_any_field(viewer, model, model_admin):
    declared = set(declared_parameters(model_admin))
    url = changelist(model)
    assert viewer.get(url).status_code == 200

    refused = {}
    for field in model._meta.concrete_fields:
        for lookup in LOOKUPS:
            parameter = f"{field.name}__{lookup}"
            if parameter not in declared:
                refused[parameter] = viewer.get(url, {parameter: "a"}).status_code

    assert refused
    assert set(refused.values()) == {400}, refused


def test_a_view_only_user_cannot_read_a_password_hash_or_an_access_key(viewer):
    admin_user = User.objects.create_superuser("root", password="secret")
    ProviderFactory(bedrock=True, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s")
    developers = reverse("admin:billing_developerbudget_changelist")

    probes = [
        viewer.get(developers, {"username": "root", "password__startswith": "pbkdf2_sha256$"}),
        viewer.get(developers, {"password__startswith": admin_user.password[:20]}),
        viewer.get(changelist(Provider), {"aws_access_key_id__startswith": "AKIA"}),
    ]

    assert [response.status_code for response in probes] == [400, 400, 400]


def value_for(model: type, parameter: str) -> str:
    """A value the declared parameter reads: a date's bounds take a date, all else "1"."""
    path, _, lookup = parameter.rpartition("__")
    if lookup not in ("gte", "lt"):
        return "1"
    is_datetime = isinstance(get_fields_from_path(model, path)[-1], DateTimeField)
    return "2026-01-01T00:00:00+00:00" if is_datetime else "2026-01-01"


@pytest.mark.parametrize(("model", "model_admin"), ADMINS)
def test_every_declared_filter_still_filters(viewer, model, model_admin):
    url = changelist(model)
    queries = [{name: value_for(model, name)} for name in declared_parameters(model_admin)]
    if hierarchy := model_admin.date_hierarchy:
        queries.append({f"{hierarchy}__year": "2026", f"{hierarchy}__month": "1"})

    answers = {str(query): viewer.get(url, query).status_code for query in queries}

    assert answers == dict.fromkeys(answers, 200)


HIERARCHIES = [
    pytest.param(model, model_admin.date_hierarchy, id=model._meta.label)
    for model, model_admin in admin.site._registry.items()
    if model_admin.date_hierarchy and model not in NOT_A_CHANGE_LIST
]


@pytest.mark.parametrize(("model", "hierarchy"), HIERARCHIES)
def test_a_date_hierarchy_past_the_calendars_end_is_a_bad_lookup(viewer, model, hierarchy):
    dates = [
        {"year": "9999"},
        {"year": "9999", "month": "12"},
        {"year": "9999", "month": "12", "day": "31"},
        {"year": "9" * 20},
        {"year": "2026", "month": "13"},  # Django's own bad lookup, for comparison
    ]
    queries = [{f"{hierarchy}__{part}": value for part, value in date.items()} for date in dates]

    answers = [viewer.get(changelist(model), query) for query in queries]

    # Sent back to the list with ?e=1, which says the query was not understood.
    assert [answer.status_code for answer in answers] == [302] * len(dates)
    assert {answer.url.rpartition("?")[2] for answer in answers} == {"e=1"}


def filtered_changelist_links(page: str, at: str) -> set[str]:
    """The page's links to a change list with a query string (relative ones are to `at`)."""
    links = set()
    for href in re.findall(r'href="([^"]*\?[^"]*)"', page):
        link = html.unescape(href)
        path = link.split("?", 1)[0] or at
        if resolve(path).url_name.endswith("_changelist"):
            links.add(path + link[link.index("?") :])
    return links


def test_the_links_the_admin_shows_still_answer(viewer):
    """Filter choices, date hierarchy, a provider's models, an import's audit entries."""
    Group.objects.create(name="backend")
    provider = LLMModelFactory().provider
    token = correlation_id.set("import-20261120T090000Z-0a1b2c3d")
    try:
        LLMModelFactory(provider=provider)
    finally:
        correlation_id.reset(token)
    pages = [changelist(model) for model in admin.site._registry if model not in NOT_A_CHANGE_LIST]
    pages.append(reverse("admin:llmadmin_provider_change", args=[provider.pk]))

    links = set()
    for page in pages:
        links |= filtered_changelist_links(viewer.get(page).content.decode(), at=page)
    answers = {link: viewer.get(link).status_code for link in links}

    models_link = (
        f"{reverse('admin:llmadmin_llmmodel_changelist')}?provider__id__exact={provider.pk}"
    )
    audit_link = (
        f"{reverse('admin:auditlog_logentry_changelist')}?cid=import-20261120T090000Z-0a1b2c3d"
    )
    assert {models_link, audit_link} <= set(answers)
    assert answers == dict.fromkeys(answers, 200)


@pytest.mark.parametrize(
    ("url", "query"),
    [
        pytest.param("admin:auditlog_logentry_changelist", {"cid": "\x00"}, id="audit cid"),
        pytest.param("admin:llmadmin_llmmodel_changelist", {"q": "a\x00"}, id="search"),
        pytest.param(
            "admin:billing_usagerecord_changelist", {"provider_type__exact": "\x00"}, id="filter"
        ),
        pytest.param(
            "admin:autocomplete",
            {
                "app_label": "billing",
                "model_name": "groupbudget",
                "field_name": "group",
                "term": "\x00",
            },
            id="autocomplete",
        ),
    ],
)
def test_a_nul_in_an_admin_query_is_refused(admin_client, url, query):
    response = admin_client.get(reverse(url), query)

    assert response.status_code == 400


def test_a_search_reads_no_column_the_list_does_not_show(viewer):
    # The developer budgets list shows usernames, not addresses: searching by an address
    # would read one out by counting results.
    User.objects.create_user("dana", email="dana.secret@corp.example")
    url = reverse("admin:billing_developerbudget_changelist")

    by_address = viewer.get(url, {"q": "secret@corp"})
    by_name = viewer.get(url, {"q": "dana"})

    assert by_address.context["cl"].result_count == 0
    assert by_name.context["cl"].result_count == 1


def test_an_action_on_a_selection_that_names_no_row_is_a_400(admin_client, admin_user):
    request = RequestFactory().get("/")
    request.user = admin_user
    answers = {}
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.get_actions(request):
            for selected in ("abc", "1.5", "\x00", PAST_64_BITS):
                post = {"action": action, "_selected_action": selected, "index": "0"}
                response = admin_client.post(changelist(model), post)
                answers[model._meta.label, action, selected] = response.status_code

    assert ("gateway.PersonalAccessToken", "revoke", "abc") in answers
    assert answers == dict.fromkeys(answers, 400)


def test_a_form_shown_again_with_an_autocompletes_value_that_is_no_key_says_so(admin_client):
    Group.objects.create(name="team")
    answers = {}
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.autocomplete_fields:
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
            for value in ("abc", PAST_64_BITS):
                response = admin_client.post(url, {name: value})
                page = response.context["adminform"] if response.status_code == 200 else None
                answers[model._meta.label, name, value] = page and page.form.errors[name]

    assert {(label, name) for label, name, _ in answers} == {
        ("billing.GroupBudget", "group"),
        ("billing.GroupLimits", "group"),
    }
    choose = ["Select a valid choice. That choice is not one of the available choices."]
    assert answers == dict.fromkeys(answers, choose)


def test_a_many_to_many_value_past_its_keys_range_is_an_error_on_its_field(admin_client):
    model = LLMModelFactory(provider=ProviderFactory(openai=True))
    model_page = reverse("admin:llmadmin_llmmodel_change", args=[model.pk])
    posts = {
        field: (model_page, form_as_loaded(admin_client, model_page, **{field: [PAST_64_BITS]}))
        for field in ("allowed_groups", "allowed_users")
    }
    posts["closed_to"] = (
        reverse("admin:gateway_gatewaypolicy_change", args=[1]),
        {"enabled": "on", "closed_to": [PAST_64_BITS]},
    )
    answers = {}
    for field, (url, data) in posts.items():
        response = admin_client.post(url, data)
        page = response.context["adminform"] if response.status_code == 200 else None
        answers[field] = page and page.form.errors[field]

    assert answers == {field: [f"“{PAST_64_BITS}” is not a valid value."] for field in answers}


def test_the_usage_records_account_filter_takes_an_id_past_64_bits_as_no_accounts(admin_client):
    response = admin_client.get(changelist(UsageRecord), {"provider": PAST_64_BITS})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0
