from django.urls import path

from accounts.permissions import PUBLIC
from accounts.routes import declare
from accounts.sso import pages, views

# The provider's side: the callback URL to register is <base URL>/oidc/callback/ (docs/sso.md).
oidc_urlpatterns = [
    path(
        "authenticate/",
        declare(PUBLIC)(views.SsoStartView.as_view()),
        name="oidc_authentication_init",
    ),
    path(
        "callback/",
        declare(PUBLIC)(views.SsoCallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path("signed-out/", views.signed_out, name="sso-signed-out"),
]

page_urlpatterns = [
    path("users/sso/", pages.sso_settings, name="sso-settings"),
    path("users/sso/rules/", pages.sso_mapping_create, name="sso-rule-create"),
    path("users/sso/rules/<int:pk>/delete/", pages.sso_mapping_delete, name="sso-rule-delete"),
    path("users/sso/seats/", pages.sso_seats_update, name="sso-seats"),
]
