from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from chat import views

urlpatterns = [
    path("agents/", views.agents, name="agents"),
    path("agents/usage/", views.agents_usage, name="agents-usage"),
    path("api/v1/models/", views.ModelListView.as_view(), name="api-models"),
    path("api/v1/chat/", views.ChatTurnView.as_view(), name="api-chat"),
    path("api/v1/usage/", views.UsageView.as_view(), name="api-usage"),
    path(
        "api/v1/conversations/<int:pk>/",
        views.ConversationView.as_view(),
        name="api-conversation",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", views.APIDocsView.as_view(url_name="api-schema"), name="api-docs"),
]
