"""Shared plumbing for the scriptable commands: service errors become clean CLI errors."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.actor import Actor
from accounts.errors import ApplicationError
from accounts.models import Organization


class ServiceCommand(BaseCommand):
    actor = Actor.system("manage.py")

    def handle(self, *args: Any, **options: Any) -> str | None:
        try:
            return self.run(**options)
        except ApplicationError as exc:
            details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.errors.items())
            raise CommandError(details) from exc

    def run(self, **options: Any) -> str | None:
        raise NotImplementedError

    @staticmethod
    def org_by_slug(slug: str) -> Organization:
        org = Organization.unscoped.filter(slug__iexact=slug.strip()).first()
        if org is None:
            raise CommandError(f"No organization with slug '{slug}'.")
        return org
