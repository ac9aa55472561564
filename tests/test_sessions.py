"""Sessions (config/sessions.py: Django's database sessions, each read with its user in one
query): a login lasts while its session row is live and its user may still log in, and ends
everywhere once the row expires or goes, the user is deactivated or deleted, or their password
changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from billing.models import DailyUsage, UserBudget
from llmadmin.models import ConfigurationVersion, LoginSession

pytestmark = pytest.mark.django_db

MODEL_LIST = "/api/v1/models/"
AGENTS_PAGE = "/agents/"


def test_a_live_session_keeps_its_developer_logged_in(client, developer):
    assert client.get(MODEL_LIST).status_code == 200
    assert client.get(AGENTS_PAGE).status_code == 200


def test_a_login_stores_its_user_with_the_session_and_a_logout_ends_it(client, django_user_model):
    django_user_model.objects.create_user("dev", password="a long passphrase", is_staff=True)
    client.post("/admin/login/", {"username": "dev", "password": "a long passphrase"})

    assert LoginSession.objects.values_list("user__username", flat=True).get() == "dev"
    client.post("/admin/logout/")
    assert not LoginSession.objects.exists()


def expire(developer) -> None:
    LoginSession.objects.update(expire_date=timezone.now())


def expire_yesterday(developer) -> None:
    LoginSession.objects.update(expire_date=timezone.now() - timedelta(days=1))


def delete_session(developer) -> None:
    LoginSession.objects.all().delete()


def deactivate(developer) -> None:
    developer.is_active = False
    developer.save()


def change_password(developer) -> None:
    developer.set_password("changed elsewhere")
    developer.save()


def delete_user(developer) -> None:
    developer.delete()


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(expire, id="expired"),
        pytest.param(expire_yesterday, id="expired a day ago"),
        pytest.param(delete_session, id="session deleted (a logout elsewhere)"),
        pytest.param(deactivate, id="user deactivated"),
        pytest.param(change_password, id="password changed"),
        pytest.param(delete_user, id="user deleted"),
    ],
)
def test_a_session_that_ended_or_whose_user_may_not_log_in_is_no_login(client, developer, end):
    end(developer)
    assert client.get(MODEL_LIST).status_code == 403
    # A page of Django's own (DRF checks is_active again; Django's views trust request.user).
    assert client.get(AGENTS_PAGE).status_code == 302


def test_a_password_change_ends_the_session_for_good(client, developer):
    change_password(developer)
    client.get(MODEL_LIST)

    # As Django ends it: the session is flushed, not only refused this once.
    assert not LoginSession.objects.exists()


def test_a_session_is_read_with_its_user_and_their_budget_in_one_query(
    client, developer, django_assert_num_queries
):
    client.get(MODEL_LIST)  # the configuration cached
    # The session with its developer, their groups, budget and the configuration's version:
    # all the list reads.
    with django_assert_num_queries(1) as captured:
        client.get(MODEL_LIST)
    (only,) = [query["sql"] for query in captured.captured_queries]
    for model in (LoginSession, developer, UserBudget, DailyUsage, ConfigurationVersion):
        assert model._meta.db_table in only


def test_a_login_under_a_rotated_secret_stays_and_takes_the_new_one(
    client, developer, settings, django_assert_num_queries
):
    client.get(MODEL_LIST)  # the configuration cached
    new_secret = {"SECRET_KEY": "a new secret " * 5, "SECRET_KEY_FALLBACKS": [settings.SECRET_KEY]}
    with override_settings(**new_secret):
        # Django's own way verifies the old hash and renews the session with the new one...
        assert client.get(MODEL_LIST).status_code == 200
        # ... which the next request reads with its user in one query again.
        with django_assert_num_queries(1):
            assert client.get(MODEL_LIST).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_moves_every_live_login_and_a_rollback_moves_them_back(
    client, django_user_model
):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        developer = django_user_model.objects.create_user("dev")
        # Logins as Django's own database store wrote them before: one live, one expired.
        live, expired = DjangoSessionStore(), DjangoSessionStore()
        for session in (live, expired):
            session.update(
                {
                    SESSION_KEY: str(developer.pk),
                    BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
                    HASH_SESSION_KEY: developer.get_session_auth_hash(),
                }
            )
            session.create()
        Session.objects.filter(session_key=expired.session_key).update(expire_date=timezone.now())
        migrated_to_latest()

        assert list(LoginSession.objects.values_list("session_key", "user_id")) == [
            (live.session_key, developer.pk)
        ]
        # Moved, not copied: nothing would end or clear a login left in Django's table.
        assert not Session.objects.exists()
        client.cookies["sessionid"] = live.session_key
        assert client.get(MODEL_LIST).status_code == 200

        MigrationExecutor(connection).migrate([BEFORE])
        assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    finally:
        migrated_to_latest()


BEFORE = ("llmadmin", "0018_backup_keys")


def migrated_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def user_deletion_page(admin_client, user, view: str):
    if view == "delete view":
        return admin_client.get(reverse("admin:auth_user_delete", args=[user.pk]))
    return admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [user.pk]},
    )


@pytest.mark.parametrize("view", ["delete view", "delete selected action"])
def test_the_admins_confirmation_of_a_users_deletion_shows_no_session_key(
    client, developer, admin_client, view
):
    key = client.cookies["sessionid"].value

    page = user_deletion_page(admin_client, developer, view)

    assert page.status_code == 200
    assert b"Are you sure" in page.content
    assert key.encode() not in page.content


def test_a_staff_member_who_may_delete_users_cannot_take_over_a_superusers_session(
    client, django_user_model
):
    root = django_user_model.objects.create_superuser("root")
    client.force_login(root)
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="auth", codename__in=["view_user", "delete_user"]
        )
    )
    staff_client = Client()
    staff_client.force_login(staff)

    page = staff_client.get(reverse("admin:auth_user_delete", args=[root.pk])).content.decode()

    assert "Are you sure" in page
    assert client.cookies["sessionid"].value not in page


def test_under_another_session_engine_a_login_is_read_as_django_reads_it(client, django_user_model):
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        client.force_login(django_user_model.objects.create_user("dev"))
        assert client.get(MODEL_LIST).status_code == 200


def test_clearsessions_deletes_the_expired_logins_only(client, developer):
    live = client.cookies["sessionid"].value
    expired = Client()
    expired.force_login(developer)
    LoginSession.objects.filter(session_key=expired.cookies["sessionid"].value).update(
        expire_date=timezone.now()
    )

    call_command("clearsessions")

    assert list(LoginSession.objects.values_list("session_key", flat=True)) == [live]
