from typing import Any

from django.core.management.base import CommandParser

from accounts.management.commands._base import ServiceCommand
from fleet.services.keys import data_keys_rotate


class Command(ServiceCommand):
    help = "Give each organization (or one) a new data key and re-encrypt its secrets under it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="organization slug (default: every organization)")

    def run(self, **options: Any) -> None:
        org = self.org_by_slug(options["org"]) if options.get("org") else None
        done = data_keys_rotate(org=org)
        self.stdout.write(
            f"New data keys for {done['orgs']} organization(s); "
            f"{done['secrets']} secret(s) re-encrypted."
        )
