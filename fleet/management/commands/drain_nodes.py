from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.management.commands._base import ServiceCommand
from fleet.nodes.lifecycle import nodes_drain


class Command(ServiceCommand):
    help = (
        "Tell connected fleet nodes to go away (goaway with a jittered reconnect_after_ms, then "
        "close 1012) so they reconnect elsewhere: before stopping a web replica."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--replica",
            default="",
            help="only nodes connected to this replica (host:pid as the node list shows it)",
        )
        parser.add_argument(
            "--max-reconnect-ms",
            type=int,
            default=30_000,
            help="nodes reconnect after a random delay up to this (default 30000)",
        )

    def run(self, **options: Any) -> None:
        spread = options["max_reconnect_ms"]
        if not 100 <= spread <= 3_600_000:
            raise CommandError("--max-reconnect-ms must be between 100 and 3600000.")
        count = nodes_drain(max_reconnect_ms=spread, replica=options["replica"])
        self.stdout.write(f"Sent goaway to {count} connected node(s).")
