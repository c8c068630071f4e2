"""SSH hosts for the demo fleet's simulated miners (idempotent): `make run` does this for you."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.management.commands._base import ServiceCommand
from fleet.models import Miner
from terminals.models import AuthMethod, SshHost
from terminals.services.hosts import host_add, host_update


class Command(ServiceCommand):
    help = (
        "Add an SSH host (root, the miner's password) for the first simulated miners of an "
        "inventory that serve SSH (python -m miners.sim --ssh), at the site each was paired to."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inventory", required=True, metavar="FILE")
        parser.add_argument("--org", default="demo", help="organization slug (default: demo)")
        parser.add_argument("--count", type=int, default=4, help="how many miners (default 4)")

    def run(self, **options: Any) -> None:
        try:
            entries = json.loads(Path(options["inventory"]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError(f"Can't read the inventory: {exc}") from exc
        org = self.org_by_slug(options["org"])
        added = updated = 0
        with_ssh = [e for e in entries if isinstance(e, dict) and "ssh" in e.get("ports", {})]
        for entry in with_ssh[: max(0, options["count"])]:
            miner = Miner.unscoped.filter(org=org, host=entry["host"]).first()
            if miner is None:
                continue  # not paired (yet): seed_demo_fleet first
            name = f"{miner.name} (ssh)"[:120]
            host = SshHost.unscoped.filter(org=org, name=name).first()
            if host is None:
                host_add(
                    actor=self.actor,
                    site=miner.site,
                    name=name,
                    address=entry["host"],
                    port=int(entry["ports"]["ssh"]),
                    username="root",
                    auth_method=AuthMethod.PASSWORD,
                    secret=str(entry["password"]),
                    miner=miner,
                )
                added += 1
            elif (host.address, host.port) != (entry["host"], int(entry["ports"]["ssh"])):
                host_update(
                    actor=self.actor,
                    host=host,
                    address=entry["host"],
                    port=int(entry["ports"]["ssh"]),
                    auth_method=AuthMethod.PASSWORD,
                    secret=str(entry["password"]),
                )
                updated += 1
        self.stdout.write(
            f"SSH hosts for simulated miners in {org.slug}: {added} added, {updated} moved"
        )
