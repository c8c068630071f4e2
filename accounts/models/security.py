from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class LoginResult(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Wrong credentials"
    LOCKED = "locked", "Locked out"
    MFA_FAILURE = "mfa_failure", "Wrong MFA code"
    LOGOUT = "logout", "Signed out"
    REFUSED = "refused", "Refused by policy"


class LoginMethod(models.TextChoices):
    PASSWORD = "password", "Password"
    MFA = "mfa", "Password + MFA"
    SSO = "sso", "Single sign-on"
    RECOVERY = "recovery_code", "Recovery code"


class LoginEvent(models.Model):
    """Audit of every sign-in attempt, kept apart from activity so it can't be crowded out."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="login_events",
    )
    email = models.CharField(max_length=254, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    result = models.CharField(max_length=16, choices=LoginResult.choices)
    method = models.CharField(
        max_length=16, choices=LoginMethod.choices, default=LoginMethod.PASSWORD
    )
    # SSO attempts: the provider and the subject it vouched for (the identity key).
    sso_issuer = models.CharField(max_length=300, blank=True)
    sso_subject = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.email} {self.result} from {self.ip}"


class LoginLockout(models.Model):
    """Failure counter and lock for one key (``email:…`` or ``ip:…``); backoff doubles per lock."""

    key = models.CharField(max_length=300, unique=True)
    failures = models.PositiveIntegerField(default=0)
    lock_count = models.PositiveIntegerField(default=0)
    locked_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.key


class TrackedSession(models.Model):
    """A server-side record of a browser session so a user can see and revoke it."""

    session_key = models.CharField(max_length=40, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracked_sessions"
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} {self.ip}"
