from typing import Any

from django.core.management.base import CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.services.orgs import org_create


class Command(ServiceCommand):
    help = "Create an organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")

    def run(self, **options: Any) -> None:
        org = org_create(actor=self.actor, name=options["name"], slug=options.get("slug"))
        self.stdout.write(f"Created organization '{org.name}' (slug {org.slug}).")
