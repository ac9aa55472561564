from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """Django's admin on our site (config.admin), packages' admins included."""

    default_site = "config.admin.AdminSite"
