from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat import views

urlpatterns = [
    path("agents/", views.agents, name="agents"),
    path("api/v1/models/", views.ModelListView.as_view(), name="api-models"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
