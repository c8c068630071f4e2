from __future__ import annotations

from prometheus_client import Counter

LOGIN_ATTEMPTS = Counter(
    "rigwarden_login_attempts_total", "Sign-in attempts by result and method", ["result", "method"]
)
