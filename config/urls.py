from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView

from gateway import views as gateway_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="agents"), name="home"),
    # Where a browser looks for the icon of a page that names none (the API's JSON). Lazy: the
    # hashed file name is only known once collectstatic has run.
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg"))),
    # The usage and budget pages' addresses from before they moved to the billing app.
    path("admin/llmadmin/", include("billing.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("gateway/", include("gateway.urls")),
    # The developers' own tokens for the gateway: a page beside the chat's.
    path("agents/tokens/", gateway_views.tokens, name="tokens"),
    path("agents/tokens/<int:pk>/revoke/", gateway_views.revoke, name="token-revoke"),
    path("", include("chat.urls")),
]

# JSON, not an HTML page, for an /api/ URL that matches no route.
handler404 = "chat.views.not_found"
# A 503, not a 500, while the database is unreachable.
handler500 = "chat.views.server_error"
