from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.utils import timezone

from fleet import partitions
from fleet.services import retention


class Command(BaseCommand):
    help = (
        "Show the time partitions of the sample tables (PostgreSQL); --maintain runs the "
        "periodic maintenance now: partitions created ahead, default partitions emptied, "
        "expired partitions dropped. -v 2 lists every partition."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--maintain", action="store_true", help="run the maintenance now")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            self.stdout.write(
                "SQLite: samples are plain tables; retention deletes expired rows "
                f"({retention.prune()})."
                if options["maintain"]
                else "SQLite: samples are plain tables (no partitions)."
            )
            return
        if options["maintain"]:
            done = retention.prune(now=timezone.now())
            self.stdout.write(
                f"{done['partitions_created']} partition(s) created, "
                f"{done['partitions_dropped']} dropped, {done['default_rows_moved']} row(s) "
                f"moved out of default partitions, {done['partition_steps_skipped']} step(s) "
                "skipped on a lock (retried by the next run)."
            )
        for series in partitions.SERIES:
            found = partitions.partitions_list(series)
            ranged = [p for p in found if p.start and p.end]
            default = [p for p in found if not p.start]
            span = (
                f"{ranged[0].start:%Y-%m-%d %H:%M} … {ranged[-1].end:%Y-%m-%d %H:%M}"
                if ranged
                else "none"
            )
            self.stdout.write(
                f"{series.parent}: {len(ranged)} {series.period.value} partitions ({span}), "
                f"kept {getattr(settings, series.setting)} {series.unit} ({series.setting}), "
                f"{sum(p.bytes for p in found) // 1024} KiB, "
                f"default partition: {'present' if default else 'MISSING'}"
            )
            if options["verbosity"] < 2:
                continue
            for part in found:
                bounds = (
                    f"{part.start:%Y-%m-%d %H:%M} … {part.end:%Y-%m-%d %H:%M}"
                    if part.start and part.end
                    else "DEFAULT (kept empty)"
                )
                rows = "?" if part.rows < 0 else str(part.rows)
                self.stdout.write(
                    f"  {part.name:36} {bounds:35} ~{rows:>10} rows {part.bytes // 1024:>9} KiB"
                )
