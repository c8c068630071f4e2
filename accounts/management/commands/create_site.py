from typing import Any

from django.core.management.base import CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.services.orgs import site_create


class Command(ServiceCommand):
    help = "Create a site in an organization."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")

    def run(self, **options: Any) -> None:
        org = self.org_by_slug(options["org"])
        site = site_create(
            actor=self.actor, org=org, name=options["name"], slug=options.get("slug")
        )
        self.stdout.write(f"Created site '{site.name}' (slug {site.slug}) in {org.slug}.")
