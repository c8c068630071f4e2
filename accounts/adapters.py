from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.mfa.adapter import DefaultMFAAdapter
from django import forms
from django.http import HttpRequest

from accounts.actor import client_ip, user_agent
from accounts.crypto import MFA_PURPOSE, seal, unseal
from accounts.models import LoginResult
from accounts.services.security import lockout_remaining, login_event_record


class AccountAdapter(DefaultAccountAdapter):
    """Adds lockout with backoff in front of allauth's authentication; no public sign-up."""

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        email = str(credentials.get("email") or credentials.get("username") or "")
        remaining = lockout_remaining(email=email, ip=client_ip(request))
        if remaining:
            login_event_record(
                result=LoginResult.LOCKED,
                email=email,
                ip=client_ip(request),
                user_agent=user_agent(request),
            )
            minutes = max(1, round(remaining / 60))
            raise forms.ValidationError(
                f"Too many failed sign-in attempts. Try again in about {minutes} minute{'s' if minutes != 1 else ''}."
            )
        super().pre_authenticate(request, **credentials)

    def get_logout_redirect_url(self, request: HttpRequest) -> str:
        """An SSO session ends at the provider too (RP-initiated logout)."""
        from accounts.sso.views import provider_logout_url

        return provider_logout_url(request) or super().get_logout_redirect_url(request)


class MFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored sealed with a key from FLEET_MASTER_KEY."""

    def encrypt(self, text: str) -> str:
        return seal(text, purpose=MFA_PURPOSE)

    def decrypt(self, encrypted_text: str) -> str:
        return unseal(encrypted_text, purpose=MFA_PURPOSE)
