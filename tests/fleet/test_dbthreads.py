"""``fleet.dbthreads``: database work on threads of its own, each with a persistent connection
that is not health-checked per call, and replaced after it broke."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import DatabaseError, connection
from django.db.backends.utils import CursorWrapper

from fleet.dbthreads import DbThreads

pytestmark = pytest.mark.django_db(transaction=True)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _terminate(pid: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    connection.close()


async def test_one_connection_per_thread_no_check_per_call_and_a_broken_one_replaced() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    threads = DbThreads("rw-test-db", lambda: 1, sqlite_shared=True)
    try:
        first = await threads.run(_backend_pid)
        assert await threads.run(_backend_pid) == first  # kept, not reopened per call

        health_checks: list[str] = []
        original = CursorWrapper.execute

        def counting(self: CursorWrapper, sql: str, params: Any = None) -> Any:
            if sql.strip().upper() == "SELECT 1":
                health_checks.append(sql)
            return original(self, sql, params)

        CursorWrapper.execute = counting  # type: ignore[method-assign]
        try:
            for _ in range(5):
                await threads.run(_backend_pid)
        finally:
            CursorWrapper.execute = original  # type: ignore[method-assign]
        assert health_checks == []

        await sync_to_async(_terminate)(first)  # another connection cuts the thread's
        with pytest.raises(DatabaseError):
            await threads.run(_backend_pid)
        assert await threads.run(_backend_pid) != first  # the next call reconnected
    finally:
        threads.shutdown()
