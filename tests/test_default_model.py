"""At most one default model, guaranteed by the database."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from llmadmin.models import LLMModel
from llmadmin.services import model_make_default
from tests.factories import LLMModelFactory

pytestmark = pytest.mark.django_db


def test_making_a_model_the_default_unsets_the_previous_default():
    first = LLMModelFactory(is_default=True)
    second = LLMModelFactory()

    model_make_default(model=second)

    assert list(LLMModel.objects.filter(is_default=True)) == [second]
    first.refresh_from_db()
    assert first.is_default is False


def test_saving_a_new_default_through_full_clean_replaces_the_old_one():
    previous = LLMModelFactory(is_default=True)
    model = LLMModelFactory.build(provider=previous.provider, is_default=True)

    model.full_clean()
    model.save()

    assert LLMModel.objects.filter(is_default=True).get() == model


def test_the_database_refuses_a_second_default_written_around_the_models():
    first = LLMModelFactory(is_default=True)
    second = LLMModelFactory()

    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE llmadmin_llmmodel SET is_default = %s WHERE id = %s", [True, second.pk]
        )

    assert LLMModel.objects.filter(is_default=True).get() == first


def test_the_database_refuses_two_defaults_in_one_bulk_write():
    provider = LLMModelFactory().provider

    with pytest.raises(IntegrityError), transaction.atomic():
        LLMModel.objects.bulk_create(
            [
                LLMModel(
                    provider=provider,
                    identifier=f"m{n}",
                    display_name=f"M{n}",
                    context_limit=1000,
                    is_default=True,
                )
                for n in range(2)
            ]
        )


def test_a_failed_save_keeps_the_previous_default():
    first = LLMModelFactory(is_default=True)
    second = LLMModelFactory(context_limit=1000)
    second.is_default = True
    second.max_output_tokens = 5000  # above the context limit: refused by the database

    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()

    first.refresh_from_db()
    assert first.is_default is True


def test_a_disabled_model_cannot_be_the_default():
    model = LLMModelFactory(enabled=False)

    with pytest.raises(ValidationError) as error:
        model_make_default(model=model)

    assert "is_default" in error.value.message_dict


def test_disabling_the_default_asks_to_choose_another_default_first():
    model = LLMModelFactory(is_default=True)
    model.enabled = False

    with pytest.raises(ValidationError) as error:
        model.full_clean()

    assert "choose another default" in error.value.message_dict["is_default"][0]


def test_deleting_the_default_leaves_no_default():
    model = LLMModelFactory(is_default=True)
    LLMModelFactory()

    model.delete()

    assert not LLMModel.objects.filter(is_default=True).exists()


THREADS = 16
ROUNDS = 5

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"
)


def in_threads(work) -> list[BaseException]:
    """Run work(index) in THREADS threads at once (each with its own connection); the errors."""
    import threading

    from django.db import connections

    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_make_default_calls_all_succeed_and_leave_one_default():
    models = [LLMModelFactory() for _ in range(THREADS)]

    def make_defaults(index: int) -> None:
        for round_ in range(ROUNDS):
            model = LLMModel.objects.get(pk=models[(index + round_) % THREADS].pk)
            model_make_default(model=model)

    errors = in_threads(make_defaults)

    assert errors == []
    assert LLMModel.objects.filter(is_default=True).count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_concurrent_stars_in_the_admin_all_succeed(django_user_model):
    from django.test import Client
    from django.urls import reverse

    models = [LLMModelFactory() for _ in range(THREADS)]
    django_user_model.objects.create_superuser("root", password="pw-for-the-threads")
    statuses: list[int] = []

    def star(index: int) -> None:
        client = Client()
        client.force_login(django_user_model.objects.get(username="root"))
        for round_ in range(ROUNDS):
            model = models[(index + round_) % THREADS]
            url = reverse("admin:llmadmin_llmmodel_make_default", args=[model.pk])
            statuses.append(client.post(url).status_code)

    errors = in_threads(star)

    assert errors == []
    assert statuses == [302] * (THREADS * ROUNDS)
    assert LLMModel.objects.filter(is_default=True).count() == 1
