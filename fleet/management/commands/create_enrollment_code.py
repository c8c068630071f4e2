from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.models import Site
from fleet.nodes.enrollment import enrollment_code_create


class Command(ServiceCommand):
    help = (
        "Create a one-use fleet-node enrollment code (valid 1 h); the code is printed once, "
        "alone on the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--site", help="slug of the site the node will serve (optional)")

    def run(self, **options: Any) -> None:
        org = self.org_by_slug(options["org"])
        site = None
        if options.get("site"):
            site = Site.unscoped.filter(org=org, slug__iexact=options["site"].strip()).first()
            if site is None:
                raise CommandError(f"No site with slug '{options['site']}' in {org.slug}.")
        code, row = enrollment_code_create(actor=self.actor, org=org, site=site)
        self.stdout.write(
            f"Enrollment code for {org.slug} (one use, expires {row.expires_at:%Y-%m-%d %H:%M} UTC). "
            "On the node: python -m fleetnode enroll --server URL --code CODE"
        )
        self.stdout.write(code)
