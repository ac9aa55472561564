from django.apps import AppConfig


class LlmadminConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "llmadmin"
    verbose_name = "LLM providers and models"
