"""The billing admins' forms: a developer's own budget, group and developer limits."""

from __future__ import annotations

from typing import Any

from django import forms

from billing.models import LIMIT_FIELDS, DeveloperLimits, GroupLimits, UserBudget


class UserBudgetForm(forms.ModelForm):
    """A developer's own allowance: an amount, or no limit, either replacing their groups'."""

    no_limit = forms.BooleanField(
        label="No limit", required=False, help_text="Tick for no limit, whatever the groups give."
    )

    class Meta:
        model = UserBudget
        fields = ["monthly_allowance", "no_limit"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "monthly_allowance"
        ].help_text = (
            "USD this developer may spend per calendar month, whatever their groups allow."
        )
        if self.instance.pk and self.instance.monthly_allowance is None:
            self.initial["no_limit"] = True

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        amount, no_limit = cleaned.get("monthly_allowance"), cleaned.get("no_limit")
        if no_limit and amount is not None:
            self.add_error("no_limit", "Either an amount or no limit, not both.")
        elif not no_limit and amount is None and "monthly_allowance" not in self.errors:
            self.add_error(
                "monthly_allowance",
                "Enter an amount, or tick no limit; to use the groups' allowance, delete "
                "the override.",
            )
        return cleaned


# A limit's errors on its field, in words that say what to type.
LIMIT_ERRORS = {
    "invalid": "Enter a whole number, or leave it empty for no limit.",
    "min_value": "Enter 1 or more, or leave it empty for no limit.",
}


class LimitsForm(forms.ModelForm):
    """A group's or a developer's limits: each a whole number of 1 or more, or empty (not set).
    At least one is set: limits that set nothing are deleted, not kept empty."""

    no_limit_set = "Set at least one limit, or delete these limits."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in LIMIT_FIELDS:
            # Also the model's own validators' messages (0 passes the form field's minimum).
            self.fields[name].error_messages.update(LIMIT_ERRORS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Empty, not typed wrongly (those have their field's error).
        if all(cleaned.get(name) is None and name not in self.errors for name in LIMIT_FIELDS):
            raise forms.ValidationError(self.no_limit_set)
        return cleaned


class GroupLimitsForm(LimitsForm):
    class Meta:
        model = GroupLimits
        fields = ["group", *LIMIT_FIELDS]
        error_messages = {
            "group": {"unique": "This group has limits already: change those instead."}
        }


class DeveloperLimitsForm(LimitsForm):
    no_limit_set = "Set at least one limit; to use the groups' limits, delete this developer's own."

    class Meta:
        model = DeveloperLimits
        fields = list(LIMIT_FIELDS)
