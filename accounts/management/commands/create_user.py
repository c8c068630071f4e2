from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from accounts.management.commands._base import ServiceCommand
from accounts.models import Site
from accounts.permissions import BUILTIN_ROLES
from accounts.services.members import (
    membership_add,
    password_problems,
    site_role_assign,
    user_create,
)
from accounts.services.roles import role_for_org


class Command(ServiceCommand):
    help = "Create a user with a password and make them a member of an organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument(
            "--role", required=True, help=f"one of {', '.join(BUILTIN_ROLES)} or a custom role slug"
        )
        parser.add_argument(
            "--site", help="site slug: give the role at this site only (org role: viewer)"
        )
        parser.add_argument("--full-name", default="")
        parser.add_argument("--staff", action="store_true", help="may use the Django admin")

    @transaction.atomic
    def run(self, **options: Any) -> None:
        org = self.org_by_slug(options["org"])
        role = role_for_org(org=org, slug=options["role"])
        site = None
        if options.get("site"):
            site = Site.unscoped.filter(org=org, slug__iexact=options["site"].strip()).first()
            if site is None:
                raise CommandError(f"No site '{options['site']}' in {org.slug}.")
        problems = password_problems(
            options["password"], email=options["email"], full_name=options["full_name"]
        )
        if problems:
            self.stderr.write(
                "Warning: weak password (accepted from the shell): " + " ".join(problems)
            )
        user = user_create(
            enforce_password_policy=False,
            actor=self.actor,
            email=options["email"],
            password=options["password"],
            full_name=options["full_name"],
            is_staff=options["staff"],
        )
        org_role = role_for_org(org=org, slug="viewer") if site else role
        membership_add(actor=self.actor, org=org, user=user, role=org_role)
        if site is not None:
            site_role_assign(actor=self.actor, site=site, user=user, role=role)
        where = f"site {site.slug}" if site else f"organization {org.slug}"
        self.stdout.write(f"Created {user.email} as {role.slug} in {where}.")
