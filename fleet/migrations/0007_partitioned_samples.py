"""Samples into time partitions on PostgreSQL (see ``fleet.partitions`` for the layout).

Each table is rebuilt: the plain table is renamed aside, the partitioned one is created with
the same columns and CHECK constraints, the rows are copied (into partitions created for
the retention window; rows outside it go to the default partition and are sorted out by the
maintenance the periodic task runs: moved into a partition made for them, or deleted when
already past the horizon, as the next pruning would), the plain table is dropped, then the keys and
indexes are built over the copied rows. The primary key grows the partition columns (PostgreSQL
requires it); Django keeps ``id`` as the primary key in its state. ``id`` is filled from a
sequence owned by the column (PostgreSQL 15 has no identity columns on partitioned tables).

The FK-only ``miner_id`` indexes go on every backend: ``(miner_id, ts)`` and the rollups'
unique bucket start with ``miner_id`` and serve the same lookups, one index fewer to maintain
per inserted row. SQLite (the embedded default) keeps plain tables otherwise.

The copy takes the time of its rows (at most the retention window); the tables are locked
meanwhile, so the poller's inserts wait: migrate during a quiet moment.
"""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone

from fleet import partitions

SAMPLE = "fleet_sample"
ROLLUP = "fleet_samplerollup"
RAW = partitions.RAW
ROLLUP_CHILDREN = {300: partitions.FIVE_MINUTE, 3600: partitions.HOURLY}


sql = partitions.table_sql


def _fk_name(cursor: Any, table: str) -> str:
    cursor.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    (name,) = cursor.fetchone()
    return str(name)


def _swap_in(cursor: Any, table: str, partition_by: str) -> str:
    """Rename the plain table aside and create the partitioned parent in its place; returns
    the foreign key's name (recreated once the rows are in)."""
    fk = _fk_name(cursor, table)
    names = {"t": table, "old": f"{table}_unpartitioned"}
    cursor.execute(sql("ALTER TABLE {t} RENAME TO {old}", **names))
    cursor.execute(
        sql("CREATE TABLE {t} (LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", **names)
        + f" PARTITION BY {partition_by}"
    )
    return fk


def _copy_and_key(cursor: Any, table: str, fk: str, key: str, statements: list[str]) -> None:
    names = {
        "t": table,
        "old": f"{table}_unpartitioned",
        "seq": f"{table}_id_seq",
        "pkey": f"{table}_pkey",
        "fk": fk,
    }
    for statement in (
        "INSERT INTO {t} SELECT * FROM {old}",
        "DROP TABLE {old}",
        "CREATE SEQUENCE {seq} OWNED BY {t}.id",
        "SELECT setval('{seq}', coalesce(max(id), 0) + 1, false) FROM {t}",
        "ALTER TABLE {t} ALTER id SET DEFAULT nextval('{seq}')",
        f"ALTER TABLE {{t}} ADD CONSTRAINT {{pkey}} PRIMARY KEY ({key})",
        "ALTER TABLE {t} ADD CONSTRAINT {fk} FOREIGN KEY (miner_id)"
        " REFERENCES fleet_miner (id) DEFERRABLE INITIALLY DEFERRED",
        *statements,
    ):
        cursor.execute(sql(statement, **names))


def _drop_fk_only_indexes(schema_editor: Any, table: str) -> None:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    for name, info in constraints.items():
        if info["index"] and not info["unique"] and info["columns"] == ["miner_id"]:
            schema_editor.execute(sql("DROP INDEX {i}", i=name))


def forwards(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        for table in (SAMPLE, ROLLUP):
            _drop_fk_only_indexes(schema_editor, table)
        return
    now = timezone.now()
    using = connection.alias
    with connection.cursor() as cursor:
        fk = _swap_in(cursor, SAMPLE, "RANGE (ts)")
        cursor.execute(sql("CREATE TABLE {d} PARTITION OF {t} DEFAULT", d=RAW.default, t=SAMPLE))
        partitions.partitions_ensure(RAW, now=now, using=using)
        _copy_and_key(
            cursor,
            SAMPLE,
            fk,
            "id, ts",
            [
                "CREATE INDEX sample_miner_ts ON {t} (miner_id, ts)",
                "CREATE INDEX sample_ts_brin ON {t} USING brin (ts)",
            ],
        )
        fk = _swap_in(cursor, ROLLUP, "LIST (resolution)")
        for resolution, series in ROLLUP_CHILDREN.items():
            names = {"p": series.parent, "d": series.default, "t": ROLLUP}
            cursor.execute(
                sql("CREATE TABLE {p} PARTITION OF {t}", **names)
                + f" FOR VALUES IN ({resolution:d}) PARTITION BY RANGE (ts)"
            )
            cursor.execute(sql("CREATE TABLE {d} PARTITION OF {p} DEFAULT", **names))
            partitions.partitions_ensure(series, now=now, using=using)
        _copy_and_key(
            cursor,
            ROLLUP,
            fk,
            "id, resolution, ts",
            [
                "ALTER TABLE {t} ADD CONSTRAINT rollup_unique_bucket"
                " UNIQUE (miner_id, resolution, ts)",
                "CREATE INDEX rollup_resolution_ts ON {t} (resolution, ts)",
            ],
        )
    partitions.partitions_maintain(now=now, using=using, drop=False)


def backwards(apps: Any, schema_editor: Any) -> None:
    """Plain tables again, as Django creates them, with the rows."""
    connection = schema_editor.connection
    for name in ("Sample", "SampleRollup"):
        model = apps.get_model("fleet", name)
        if connection.vendor != "postgresql":
            field = model._meta.get_field("miner")
            schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))
            continue
        names = {"t": model._meta.db_table, "copy": "rw_unpartition"}
        columns = ", ".join(sql("{c}", c=f.column) for f in model._meta.local_fields)
        with connection.cursor() as cursor:
            cursor.execute(sql("CREATE TEMP TABLE {copy} AS SELECT * FROM {t}", **names))
            cursor.execute(sql("DROP TABLE {t} CASCADE", **names))
            schema_editor.create_model(model)
            cursor.execute(
                sql("INSERT INTO {t} ", **names)
                + f"({columns}) SELECT {columns} "
                + sql("FROM {copy}", **names)
            )
            cursor.execute(sql("DROP TABLE {copy}", **names))
            cursor.execute(
                sql(
                    "SELECT setval(pg_get_serial_sequence('{t}', 'id'),"
                    " coalesce(max(id), 0) + 1, false) FROM {t}",
                    **names,
                )
            )


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0006_fleet_settings_and_list_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name="miner",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name=related,
                        to="fleet.miner",
                    ),
                )
                for model, related in (("sample", "samples"), ("samplerollup", "rollups"))
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        ),
    ]
