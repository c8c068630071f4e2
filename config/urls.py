from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.views.base import admin_login_redirect
from config import views

admin.site.site_header = "Rigwarden administration"
admin.site.site_title = "Rigwarden admin"
# One sign-in path (lockout, MFA, audit) for the admin too.
admin.site.login = admin_login_redirect  # type: ignore[method-assign]
handler404 = "config.views.not_found"

urlpatterns = [
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.api.urls")),
    path("api/schema/", declare(PUBLIC)(SpectacularAPIView.as_view()), name="schema"),
    path(
        "api/docs/",
        declare(PUBLIC)(views.swagger_csp(SpectacularSwaggerSplitView.as_view(url_name="schema"))),
        name="api-docs",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
]
