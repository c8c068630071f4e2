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

    def run(self, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandError(f"No user with e-mail {options['email']}.")
        issued = api_token_create(actor=self.actor, user=user, name=options["name"])
        self.stdout.write(
            f"Token '{issued.token.name}' for {user.email} (prefix {issued.token.prefix}); it is shown once:"
        )
        self.stdout.write(issued.secret)
