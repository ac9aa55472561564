from __future__ import annotations

from django import forms

from gateway.models import PersonalAccessToken

NEVER = "never"


def days_or_never(value: str) -> int | None:
    return None if value == NEVER else int(value)


class TokenForm(forms.Form):
    """A new token: its name (the model's field, with its rules) and how long it lasts."""

    name = PersonalAccessToken._meta.get_field("name").formfield()
    expires_in = forms.TypedChoiceField(
        label="Expires",
        choices=[("30", "in 30 days"), ("90", "in 90 days"), (NEVER, "never")],
        coerce=days_or_never,
        initial="90",
    )
