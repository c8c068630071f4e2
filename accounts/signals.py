"""Auth signal receivers: they only translate signals into security-service calls."""

from __future__ import annotations

from typing import Any

from allauth.mfa.signals import authentication_failed as mfa_authentication_failed
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from accounts.actor import client_ip, user_agent
from accounts.models import LoginMethod, LoginResult
from accounts.services.security import (
    login_event_record,
    login_failure_register,
    login_success_register,
    session_end,
    session_track,
)


def _method(request: Any, user: Any) -> str:
    """How this sign-in was completed, from allauth's per-session authentication records."""
    try:
        from allauth.account.authentication import get_authentication_records

        records = get_authentication_records(request, user)  # without the user it's always []
    except Exception:
        records = []
    mfa = [r for r in records if r.get("method") == "mfa"]
    if mfa:
        return LoginMethod.RECOVERY if mfa[-1].get("type") == "recovery_codes" else LoginMethod.MFA
    if any(r.get("method") == "socialaccount" for r in records):
        return LoginMethod.SSO
    if getattr(user, "rw_sso_identity", None) is not None:
        return LoginMethod.SSO
    return LoginMethod.PASSWORD


@receiver(user_logged_in)
def on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None:
        return
    login_success_register(email=user.email)
    identity = getattr(user, "rw_sso_identity", None)  # set by accounts.sso.backend
    login_event_record(
        result=LoginResult.SUCCESS,
        user=user,
        ip=client_ip(request),
        user_agent=user_agent(request),
        method=_method(request, user),
        sso_issuer=getattr(identity, "issuer", ""),
        sso_subject=getattr(identity, "subject", ""),
    )
    if hasattr(request, "session"):
        if not request.session.session_key:
            request.session.save()
        session_track(
            session_key=request.session.session_key,
            user=user,
            ip=client_ip(request),
            user_agent=user_agent(request),
        )


@receiver(user_login_failed)
def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    email = str(credentials.get("email") or credentials.get("username") or "")[:254]
    ip = client_ip(request) if request is not None else None
    login_failure_register(email=email, ip=ip)
    login_event_record(
        result=LoginResult.FAILURE,
        email=email,
        ip=ip,
        user_agent=user_agent(request) if request else "",
    )


@receiver(mfa_authentication_failed)
def on_mfa_failed(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A wrong TOTP/recovery code: audited, and counted towards the account's lockout."""
    ip = client_ip(request) if request is not None else None
    login_failure_register(email=user.email, ip=ip)
    login_event_record(
        result=LoginResult.MFA_FAILURE,
        user=user,
        ip=ip,
        user_agent=user_agent(request) if request is not None else "",
        method=LoginMethod.MFA,
    )


@receiver(user_logged_out)
def on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if (
        request is not None
        and getattr(request, "session", None) is not None
        and request.session.session_key
    ):
        session_end(session_key=request.session.session_key)
    if user is not None:
        login_event_record(
            result=LoginResult.LOGOUT,
            user=user,
            ip=client_ip(request) if request is not None else None,
            user_agent=user_agent(request) if request is not None else "",
        )


@receiver(post_migrate)
def sync_builtin_roles(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "name", None) != "accounts":
        return
    from accounts.services.roles import roles_sync_builtin

    roles_sync_builtin()
