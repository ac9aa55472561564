"""Sessions (config/sessions.py: Django's database sessions, read in plain SQL): a login
lasts while its session row is live, and ends everywhere once the row expires or goes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

pytestmark = pytest.mark.django_db

MODEL_LIST = "/api/v1/models/"


def test_a_live_session_keeps_its_developer_logged_in(client, developer):
    assert client.get(MODEL_LIST).status_code == 200


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(lambda rows: rows.update(expire_date=timezone.now()), id="expired"),
        pytest.param(
            lambda rows: rows.update(expire_date=timezone.now() - timedelta(days=1)),
            id="expired a day ago",
        ),
        pytest.param(lambda rows: rows.delete(), id="deleted (a logout elsewhere)"),
    ],
)
def test_a_session_that_expired_or_went_is_no_login(client, developer, end):
    end(Session.objects.all())
    assert client.get(MODEL_LIST).status_code == 403


def test_a_session_is_read_in_one_query(client, developer, django_assert_num_queries):
    client.get(MODEL_LIST)  # the configuration cached
    # The session, the developer, then the list's own reading.
    with django_assert_num_queries(3) as captured:
        client.get(MODEL_LIST)
    assert "django_session" in captured.captured_queries[0]["sql"]
