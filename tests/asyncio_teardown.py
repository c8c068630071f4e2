"""A bounded end for each test's event loop.

pytest-asyncio closes a test's loop with ``asyncio.Runner.close``, which cancels the tasks left
behind once and then waits for them without a limit. A task whose cancellation gets lost (a
library that swallows one ``CancelledError``, e.g. inside a Redis read loop that then goes round
again) made that wait endless: one CI run hung at the teardown of a test that had passed, until
pytest-timeout ended it after 300 s. Here the leftovers are cancelled again every second, for up
to ``LIMIT_S``; any that still run are reported with their stacks (a warning in the run's
summary) and left behind, so the run goes on and says which task it was."""

from __future__ import annotations

import asyncio
import io
import warnings
from asyncio import runners
from typing import Any

LIMIT_S = 20.0


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    left = asyncio.all_tasks(loop)
    if not left:
        return
    waited = 0.0
    pending = set(left)
    while pending and waited < LIMIT_S:
        for task in pending:
            task.cancel()
        _, pending = loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        waited += 1.0
    for task in pending:
        stack = io.StringIO()
        task.print_stack(file=stack)
        warnings.warn(
            f"a task still ran after {LIMIT_S:g} s of cancels: {stack.getvalue()}",
            RuntimeWarning,
            stacklevel=1,
        )
    for task in left - pending:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during asyncio.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )


def install() -> None:
    original: Any = runners._cancel_all_tasks  # type: ignore[attr-defined]
    if original is not _cancel_all_tasks:
        runners._cancel_all_tasks = _cancel_all_tasks  # type: ignore[attr-defined]
