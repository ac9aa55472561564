"""The admin site: every admin registered on it, ours and the packages' (auth, auditlog,
axes), filters its change list only by what it declares, and looks up no value as a row's key
that can't be one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest


class DeclaredFiltersChangeList(ChangeList):
    """A change list filtered only by the parameters its list filters and date hierarchy
    take. Django's own rule lets any local field be filtered with any lookup: counting the
    results of ?password__startswith=… or ?aws_access_key_id__startswith=… reads a column
    out a character at a time."""

    def get_filters(self, request: HttpRequest) -> Any:
        # PostgreSQL refuses a NUL in text (a 500 otherwise), and no filter or search means one.
        if any("\x00" in key + value for key, values in request.GET.lists() for value in values):
            raise SuspiciousOperation("NUL in an admin change list's query")
        try:
            specs = super().get_filters(request)
        except (ValueError, OverflowError) as error:
            # Django reads the hierarchy's year (month, day) into the range's end past the
            # calendar's (9999-12, a 20-digit year) unguarded: a bad lookup, as a 13th month is.
            raise IncorrectLookupParameters(error) from error
        filter_specs, has_filters, remaining, duplicates, has_active = specs
        bounds = set()
        if self.date_hierarchy and f"{self.date_hierarchy}__year" in self.filter_params:
            # What the hierarchy's year (month, day) became, replacing any sent as such.
            bounds = {f"{self.date_hierarchy}__gte", f"{self.date_hierarchy}__lt"}
        if set(remaining) - bounds:
            # A SuspiciousOperation: answered 400.
            raise DisallowedModelAdminLookup("Filtering by a parameter no filter declares")
        return filter_specs, has_filters, remaining, duplicates, has_active


class DeclaredFiltersOnly:
    """Mixed into every admin the site registers."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return DeclaredFiltersChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        # The autocomplete's ?term= (the change list's ?q= is refused above).
        if "\x00" in search_term:
            raise SuspiciousOperation("NUL in an admin search")
        return super().get_search_results(request, queryset, search_term)


class KeysChecked:
    """Mixed into every admin the site registers: what a request says names a row (an
    autocomplete's value, an action's selection) is checked to be a key before Django looks
    it up as sent, where a value that can't be one (abc, 1.5) raised ValueError: a 500."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = KeysOnlyAutocompleteSelect(
                db_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("form_class", KeysOnlyMultipleChoiceField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if not all(is_key(self.model._meta.pk, value) for value in selected):
            # A SuspiciousOperation: answered 400 (the page's checkboxes send only ids).
            raise SuspiciousOperation("An admin action's selection names no row")
        return super().response_action(request, queryset)


class KeysOnlyAutocompleteSelect(AutocompleteSelect):
    """Django's, showing again (the form refused) only a value that can be a key: the
    form's own error says what was wrong with the rest."""

    def optgroups(self, name: str, value: list[str], attr: Any = None) -> Any:
        remote = self.field.remote_field
        key = remote.model._meta.get_field(remote.field_name)
        return super().optgroups(name, [each for each in value if is_key(key, each)], attr)


class KeysOnlyMultipleChoiceField(forms.ModelMultipleChoiceField):
    """Django's, refusing a value that can't be a key before it is looked up among others
    (as Django refuses one not a number), where SQLite refused the lookup itself."""

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            options = self.queryset.model._meta
            key = options.get_field(self.to_field_name) if self.to_field_name else options.pk
            for each in value:
                # A NUL: Django's own error says so.
                if "\x00" not in str(each) and not is_key(key, each):
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"],
                        code="invalid_pk_value",
                        params={"pk": each},
                    )
        return super().clean(value)


def is_key(field: Any, value: str) -> bool:
    """Whether `value` can be a key of the field's: of its type, and within its column's range
    (SQLite can't even be asked for an integer past 64 bits)."""
    try:
        field.run_validators(field.to_python(value))
    except ValidationError:
        return False
    return True


class AdminSite(admin.AdminSite):
    def register(
        self,
        model_or_iterable: type[Model] | list[type[Model]],
        admin_class: type[admin.ModelAdmin] | None = None,
        **options: Any,
    ) -> None:
        admin_class = admin_class or admin.ModelAdmin
        declared_only = type(
            admin_class.__name__,
            (DeclaredFiltersOnly, KeysChecked, admin_class),
            {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__},
        )
        super().register(model_or_iterable, declared_only, **options)
