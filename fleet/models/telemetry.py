from __future__ import annotations

from django.db import models
from django.utils import timezone

from fleet.models.miners import Miner

LATEST_FIELDS = (
    "state",
    "hashrate_ths",
    "power_w",
    "efficiency_jth",
    "power_target_w",
    "max_temp_c",
    "temperatures",
    "fans",
    "hashboards",
    "psus",
    "pools",
    "issues",
    "updated_at",
    "polled_at",
    "failures",
    "last_error",
    "full_at",
)


class MinerLatest(models.Model):
    """The last poll of a miner: upserted in bulk by ``telemetry_ingest``, one row per miner."""

    miner = models.OneToOneField(
        Miner, on_delete=models.CASCADE, primary_key=True, related_name="latest"
    )
    state = models.CharField(max_length=20, blank=True)
    hashrate_ths = models.FloatField(null=True)
    power_w = models.FloatField(null=True)
    efficiency_jth = models.FloatField(null=True)
    power_target_w = models.FloatField(null=True)
    max_temp_c = models.FloatField(null=True)
    temperatures = models.JSONField(default=dict)
    fans = models.JSONField(default=list)
    hashboards = models.JSONField(default=list)
    psus = models.JSONField(default=list)
    pools = models.JSONField(default=list)
    issues = models.JSONField(default=list)
    updated_at = models.DateTimeField(null=True)  # the last successful poll
    polled_at = models.DateTimeField(default=timezone.now)  # the last attempt
    failures = models.PositiveIntegerField(default=0)  # consecutive failed polls
    full_at = models.DateTimeField(null=True)  # the last FULL status (boards, fans, PSUs)
    last_error = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["hashrate_ths"], name="latest_hashrate"),
            models.Index(fields=["power_w"], name="latest_power"),
            models.Index(fields=["max_temp_c"], name="latest_temp"),
        ]

    def __str__(self) -> str:
        return f"latest of miner {self.miner_id}"


class Sample(models.Model):
    """One poll's headline figures, for charts (raw; rollups are kept separately).

    On PostgreSQL the table is partitioned by hour of ``ts`` (``fleet.partitions``): the
    database's primary key is ``(id, ts)``, and ``(miner_id, ts)`` serves lookups by miner,
    so the foreign key has no index of its own."""

    miner = models.ForeignKey(
        Miner, on_delete=models.CASCADE, related_name="samples", db_index=False
    )
    ts = models.DateTimeField()
    hashrate_ths = models.FloatField(null=True)
    power_w = models.FloatField(null=True)
    max_temp_c = models.FloatField(null=True)

    class Meta:
        ordering = ["miner_id", "ts"]
        indexes = [models.Index(fields=["miner", "ts"], name="sample_miner_ts")]

    def __str__(self) -> str:
        return f"sample of miner {self.miner_id} at {self.ts:%Y-%m-%d %H:%M:%S}"


class SampleRollup(models.Model):
    """Averages of a miner's samples over ``resolution`` seconds (300 or 3600) from ``ts``,
    so charts over days and years don't read raw rows (which are kept only for a while).

    On PostgreSQL the table is partitioned by resolution, then by week (300) or month (3600)
    of ``ts``; the unique bucket ``(miner, resolution, ts)`` serves lookups by miner."""

    miner = models.ForeignKey(
        Miner, on_delete=models.CASCADE, related_name="rollups", db_index=False
    )
    resolution = models.PositiveIntegerField()
    ts = models.DateTimeField()
    hashrate_ths = models.FloatField(null=True)
    power_w = models.FloatField(null=True)
    max_temp_c = models.FloatField(null=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["miner", "resolution", "ts"], name="rollup_unique_bucket"
            )
        ]
        indexes = [models.Index(fields=["resolution", "ts"], name="rollup_resolution_ts")]

    def __str__(self) -> str:
        return f"{self.resolution}s rollup of miner {self.miner_id} at {self.ts:%Y-%m-%d %H:%M}"
