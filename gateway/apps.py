from django.apps import AppConfig


class GatewayConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from gateway.models import GatewayPolicy, PersonalAccessToken
        from llmadmin.audit import NOT_AUDITED, not_a_change

        # Made and revoked, by whom; never the digest (nor each use's time).
        auditlog.register(
            PersonalAccessToken,
            exclude_fields=[
                *NOT_AUDITED,
                *not_a_change(PersonalAccessToken),
                "digest",
                "last_used_at",
            ],
        )
        auditlog.register(
            GatewayPolicy,
            exclude_fields=not_a_change(GatewayPolicy),
            m2m_fields={"closed_to"},
        )
