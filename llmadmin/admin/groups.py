"""Django's group admin, with a name that can't pass for another group's."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.models import Group

from llmadmin.fields import validate_no_hidden_characters


class GroupForm(forms.ModelForm):
    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        validate_no_hidden_characters(name)
        return name


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Django's, with a name that can't pass for another group's."""

    form = GroupForm
