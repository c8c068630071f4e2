from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ActivityEvent, LoginEvent, LoginLockout, TrackedSession


@transaction.atomic
def history_prune() -> dict[str, int]:
    """Drop history past its retention and bookkeeping nobody needs any more."""
    now = timezone.now()
    counts = {
        "activity": ActivityEvent.unscoped.filter(
            created_at__lt=now - timedelta(days=settings.ACTIVITY_RETENTION_DAYS)
        ).delete()[0],
        "login_events": LoginEvent.objects.filter(
            created_at__lt=now - timedelta(days=settings.LOGIN_EVENT_RETENTION_DAYS)
        ).delete()[0],
        "lockouts": LoginLockout.objects.filter(updated_at__lt=now - timedelta(days=1)).delete()[0],
        "sessions": TrackedSession.objects.filter(
            last_seen_at__lt=now - timedelta(seconds=settings.SESSION_COOKIE_AGE)
        ).delete()[0],
    }
    return counts
