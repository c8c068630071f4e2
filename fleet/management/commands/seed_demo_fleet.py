"""Pair a simulator inventory into the demo org (idempotent): `make run` does this for you."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError, CommandParser

from accounts.management.commands._base import ServiceCommand
from accounts.models import Site
from fleet import dial
from fleet.demo.plan import SITES, TAG, plan
from fleet.models import Miner
from fleet.netguard import AddressRefused
from fleet.services.identity import identifier_for
from fleet.services.imports import MinerImport, miners_import
from fleet.services.miners import miner_delete


class Command(ServiceCommand):
    help = (
        "Pair the miners of a simulator inventory (python -m miners.sim --inventory FILE) "
        "into an org's sites, spread evenly; re-running adds nothing twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--inventory", required=True, metavar="FILE")
        parser.add_argument("--org", default="demo", help="organization slug (default: demo)")
        parser.add_argument(
            "--sites", default=",".join(SITES), help="site slugs, comma-separated (north,south)"
        )
        parser.add_argument(
            "--no-dial",
            action="store_true",
            help="store who the inventory says each miner is, without asking the miners",
        )
        parser.add_argument(
            "--seed-demo",
            action="store_true",
            help="run seed_demo first (the demo org, its owner and sites; prints the sign-in)",
        )
        parser.add_argument(
            "--prune",
            action="store_true",
            help=f"remove the org's miners tagged '{TAG}' that this inventory no longer has",
        )

    def run(self, **options: Any) -> None:
        entries = _read(Path(options["inventory"]))
        if options["seed_demo"]:
            call_command("seed_demo", stdout=self.stdout, stderr=self.stderr)
        org = self.org_by_slug(options["org"])
        slugs = tuple(s.strip() for s in options["sites"].split(",") if s.strip())
        sites = {s.slug: s for s in Site.unscoped.filter(org=org, slug__in=slugs)}
        missing = [slug for slug in slugs if slug not in sites]
        if missing or not slugs:
            raise CommandError(
                f"Org '{org.slug}' has no site {', '.join(missing) or '(none given)'} "
                "(manage.py seed_demo creates north and south)."
            )
        demo = plan(entries, slugs)
        infos = [m.inventory_info() for m in demo]
        if not options["no_dial"]:
            targets = [(m.entry["host"], m.port, m.driver, m.credentials) for m in demo]
            try:
                found = dial.identify_many(targets)
            except AddressRefused as exc:
                raise CommandError(str(exc)) from exc
            infos = [answer or fallback for answer, fallback in zip(found, infos, strict=True)]
        created = moved = unchanged = 0
        skipped: list[str] = []
        for slug, site in sites.items():
            items = [
                MinerImport(
                    info=info,
                    name=m.name,
                    username=m.credentials.username or "",
                    password=m.credentials.password,
                    rack=m.rack,
                    position=m.position,
                    tags=(TAG,),
                )
                for m, info in zip(demo, infos, strict=True)
                if m.site == slug
            ]
            result = miners_import(actor=self.actor, site=site, items=items)
            created += len(result.created)
            moved += len(result.moved)
            unchanged += result.unchanged
            skipped += result.skipped
        pruned = 0
        if options["prune"]:
            keep = {identifier_for(info) for info in infos}
            for miner in Miner.unscoped.filter(org=org).order_by("id"):
                if TAG in (miner.tags or []) and miner.identifier not in keep:
                    miner_delete(actor=self.actor, miner=miner)
                    pruned += 1
        counts = ", ".join(f"{slug} {sum(m.site == slug for m in demo)}" for slug in slugs)
        line = (
            f"{len(demo)} simulated miners in {org.slug} ({counts}): {created} added, "
            f"{moved} moved, {unchanged} already there"
        )
        if pruned:
            line += f", {pruned} removed"
        self.stdout.write(line)
        for reason in skipped:
            self.stderr.write(f"skipped: {reason}")


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot read the inventory {path}: {exc}") from exc
    if not isinstance(data, list) or not all(
        isinstance(e, dict) and {"kind", "host", "ports", "serial", "mac", "model"} <= set(e)
        for e in data
    ):
        raise CommandError(f"{path} is not a simulator inventory (a JSON list of miners).")
    return data
