from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from accounts.management.commands._base import ServiceCommand
from accounts.models import Organization, User
from accounts.services.members import membership_add, user_create
from accounts.services.orgs import org_create, site_create
from accounts.services.roles import role_for_org

DEMO_EMAIL = "owner@demo.rigwarden.local"


class Command(ServiceCommand):
    help = "Seed the demo organization, its owner and two sites (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password", default="hashrate-demo-2026", help="password of the demo owner"
        )

    @transaction.atomic
    def run(self, **options: Any) -> None:
        org = Organization.unscoped.filter(slug="demo").first()
        if org is None:
            org = org_create(actor=self.actor, name="Demo", slug="demo")
            site_create(
                actor=self.actor, org=org, name="North Hall", slug="north", location="Rack rows A–F"
            )
            site_create(
                actor=self.actor,
                org=org,
                name="South Yard",
                slug="south",
                location="Containers 1–4",
            )
        if not User.objects.filter(email=DEMO_EMAIL).exists():
            user = user_create(
                actor=self.actor,
                email=DEMO_EMAIL,
                password=options["password"],
                full_name="Demo Owner",
                is_staff=True,
            )
            membership_add(
                actor=self.actor, org=org, user=user, role=role_for_org(org=org, slug="owner")
            )
        self.stdout.write(f"Demo sign-in: {DEMO_EMAIL} / {options['password']}")
