import secrets
from typing import Any

from django.core.management.base import CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.sso.recovery import owner_break_glass_reset


class Command(ServiceCommand):
    help = (
        "Break-glass: give a local owner account a new password (enabled, unlocked, owner of "
        "the org; created if missing). Works whatever state single sign-on is in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument(
            "--password", help="the new password (default: a random one, printed once)"
        )
        parser.add_argument(
            "--remove-mfa", action="store_true", help="also remove the account's authenticators"
        )

    def run(self, **options: Any) -> None:
        org = self.org_by_slug(options["org"])
        password = options.get("password") or secrets.token_urlsafe(18)
        user = owner_break_glass_reset(
            actor=self.actor,
            org=org,
            email=options["email"],
            password=password,
            remove_mfa=options["remove_mfa"],
        )
        self.stdout.write(
            f"{user.email} is an owner of {org.slug} and can sign in with a password."
        )
        if not options.get("password"):
            self.stdout.write(f"New password (shown once): {password}")
