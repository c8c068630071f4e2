"""Sign-in protection: lockout with backoff, the login audit, tracked sessions."""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import LoginEvent, LoginLockout, LoginMethod, TrackedSession, User
from accounts.services.activity import activity_record_personal


def _keys(email: str, ip: str | None) -> list[str]:
    keys = [f"email:{email.strip().lower()[:254]}"] if email else []
    if ip:
        keys.append(f"ip:{ip}")
    return keys


def lockout_remaining(*, email: str, ip: str | None) -> int:
    """Seconds until sign-in is allowed again for this e-mail or IP (0 = allowed)."""
    now = timezone.now()
    until = (
        LoginLockout.objects.filter(key__in=_keys(email, ip), locked_until__gt=now)
        .order_by("-locked_until")
        .values_list("locked_until", flat=True)
        .first()
    )
    return 0 if until is None else max(1, int((until - now).total_seconds()))


@transaction.atomic
def login_failure_register(*, email: str, ip: str | None) -> int:
    """Count a failure; lock a key at the threshold, doubling the lock each time. Returns lock seconds."""
    now = timezone.now()
    longest = 0
    for key in _keys(email, ip):
        threshold = (
            settings.LOGIN_LOCKOUT_THRESHOLD
            if key.startswith("email:")
            else settings.LOGIN_IP_FAILURE_LIMIT
        )
        row, _ = LoginLockout.objects.select_for_update().get_or_create(key=key)
        if row.updated_at < now - timedelta(minutes=15) and (
            row.locked_until is None or row.locked_until < now
        ):
            row.failures = 0
        row.failures += 1
        if row.failures >= threshold:
            seconds = min(
                settings.LOGIN_LOCKOUT_BASE_SECONDS * (2**row.lock_count),
                settings.LOGIN_LOCKOUT_MAX_SECONDS,
            )
            row.locked_until = now + timedelta(seconds=seconds)
            row.lock_count += 1
            row.failures = 0
            longest = max(longest, seconds)
        row.updated_at = now
        row.save()
    return longest


def login_success_register(*, email: str) -> None:
    LoginLockout.objects.filter(key=f"email:{email.strip().lower()}").delete()


def login_event_record(
    *,
    result: str,
    email: str = "",
    user: User | None = None,
    ip: str | None = None,
    user_agent: str = "",
    method: str = LoginMethod.PASSWORD,
    sso_issuer: str = "",
    sso_subject: str = "",
) -> LoginEvent:
    from accounts.metrics import LOGIN_ATTEMPTS

    LOGIN_ATTEMPTS.labels(result=result, method=method).inc()
    if user is None and email:  # a failed attempt on a real account belongs to its audit trail
        user = User.objects.filter(email__iexact=email.strip()).first()
    return LoginEvent.objects.create(
        user=user,
        email=(email or (user.email if user else ""))[:254],
        ip=ip,
        user_agent=user_agent[:300],
        result=result,
        method=method,
        sso_issuer=sso_issuer[:300],
        sso_subject=sso_subject[:255],
    )


def session_track(
    *, session_key: str, user: User, ip: str | None, user_agent: str
) -> TrackedSession:
    tracked, _ = TrackedSession.objects.update_or_create(
        session_key=session_key,
        defaults={
            "user": user,
            "ip": ip,
            "user_agent": user_agent[:300],
            "last_seen_at": timezone.now(),
        },
    )
    return tracked


def _end_session(session_key: str) -> None:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    store(session_key=session_key).delete()


def session_end(*, session_key: str) -> None:
    """Sign-out: the session's tracking row goes with it."""
    TrackedSession.objects.filter(session_key=session_key).delete()


@transaction.atomic
def session_revoke(*, actor: Actor, session: TrackedSession) -> None:
    _end_session(session.session_key)
    activity_record_personal(
        actor=actor,
        verb="session.revoke",
        user=session.user,
        target=session,
        target_label=f"{session.user.email} {session.ip or ''}",
    )
    session.delete()


@transaction.atomic
def sessions_revoke_others(*, actor: Actor, user: User, keep_session_key: str | None) -> int:
    others = list(
        TrackedSession.objects.filter(user=user).exclude(session_key=keep_session_key or "")
    )
    for session in others:
        _end_session(session.session_key)
    TrackedSession.objects.filter(pk__in=[s.pk for s in others]).delete()
    if others:
        activity_record_personal(
            actor=actor,
            verb="session.revoke_others",
            user=user,
            target=user,
            details={"count": len(others)},
        )
    return len(others)


@transaction.atomic
def mfa_secrets_reseal() -> int:
    """Re-seal every TOTP secret and recovery-code seed under the current master key (part of
    ``rotate_master_key``); returns how many authenticators changed."""
    from allauth.mfa.models import Authenticator

    from accounts.crypto import MFA_PURPOSE, seal, unseal

    changed = 0
    for authenticator in Authenticator.objects.select_for_update():
        data = dict(authenticator.data)
        for key in ("secret", "seed"):
            if isinstance(data.get(key), str):
                data[key] = seal(unseal(data[key], purpose=MFA_PURPOSE), purpose=MFA_PURPOSE)
        if data != authenticator.data:
            authenticator.data = data
            authenticator.save(update_fields=["data"])
            changed += 1
    return changed
