from allauth.account.urls import urlpatterns as allauth_account_urls
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.sso.urls import oidc_urlpatterns, page_urlpatterns
from config import views
from fleet import metrics as fleet_metrics

admin.site.site_header = "Rigwarden administration"
admin.site.site_title = "Rigwarden admin"
# One sign-in path (lockout, MFA, audit) for the admin too.
admin.site.login = views.admin_login  # type: ignore[method-assign]
handler404 = "config.views.not_found"

# allauth's sign-in, password and two-factor pages. Not its e-mail management (one address per
# account, set by whoever invites you) nor its third-party connections (there is no SSO yet):
# /accounts/email/ and /accounts/3rdparty/ are 404s until those features exist.
allauth_urls = [
    *(p for p in allauth_account_urls if str(p.pattern) != "email/"),
    path("2fa/", include("allauth.mfa.urls")),
]

urlpatterns = [
    path("", include("accounts.urls")),
    path("", include(page_urlpatterns)),
    path("oidc/", include(oidc_urlpatterns)),  # single sign-on (docs/sso.md)
    path("", include("fleet.urls")),
    path("", include("terminals.urls")),
    path("", include("discovery.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
    path("accounts/", RedirectView.as_view(pattern_name="security"), name="accounts-home"),
    path("accounts/", include(allauth_urls)),
    path("admin/", admin.site.urls),
    path("api/", views.api_root, name="api-root"),
    path("api/v1/", views.api_v1_root, name="api-v1"),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("fleet.api.urls")),
    path("api/v1/", include("discovery.api.urls")),
    path("api/v1/", include("terminals.api.urls")),
    path("api/schema/", declare(PUBLIC)(SpectacularAPIView.as_view()), name="schema"),
    path(
        "api/docs/",
        declare(PUBLIC)(views.swagger_csp(SpectacularSwaggerSplitView.as_view(url_name="schema"))),
        name="api-docs",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("metrics/miners", fleet_metrics.miner_metrics, name="metrics-miners"),
]
