from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.models import User
from accounts.services.tokens import api_token_create


class Command(ServiceCommand):
    help = "Create an API token for a user; prints the token once, alone on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--org", help="organization slug the token is for (needed when the user has several)"
        )

    def run(self, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandError(f"No user with e-mail {options['email']}.")
        org = self.org_by_slug(options["org"]) if options.get("org") else None
        issued = api_token_create(actor=self.actor, user=user, name=options["name"], org=org)
        self.stdout.write(
            f"Token '{issued.token.name}' for {user.email} in {issued.token.org.slug} "
            f"(prefix {issued.token.prefix}); it is shown once:"
        )
        self.stdout.write(issued.secret)
