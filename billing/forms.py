"""The billing admins' forms."""

from __future__ import annotations

from typing import Any

from django import forms

from billing.models import UserBudget


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
