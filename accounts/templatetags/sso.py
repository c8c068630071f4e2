"""``{% sso_sign_in %}``: the "Sign in with SSO" link beside the password form (when it's on)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.sso import config

register = template.Library()


@register.inclusion_tag("accounts/sso/_sign_in.html", takes_context=True)
def sso_sign_in(context: dict[str, Any]) -> dict[str, Any]:
    if not config.enabled():
        return {"url": None}
    request = context.get("request")
    target = request.GET.get("next", "") if request is not None else ""
    host = {request.get_host()} if request is not None else set()
    query = (
        "?" + urlencode({"next": target})
        if target and url_has_allowed_host_and_scheme(target, allowed_hosts=host)
        else ""
    )
    return {
        "url": reverse("oidc_authentication_init") + query,
        "label": settings.OIDC_BUTTON_LABEL,
    }
