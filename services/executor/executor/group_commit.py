"""Group commit: concurrent writers share one transaction, each still waits for durability.

Hundreds of enrollments finishing steps at once would otherwise queue for SQLite's single
writer (or pay a PostgreSQL commit each). A caller's ``submit`` returns only after the batch
holding its item committed, so nothing is acknowledged before it is stored; if the batch fails,
every caller in it gets the error and its (local) activity retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

MAX_BATCH = 200


class GroupCommit:
    def __init__(self, apply: Callable[[list[Any]], Awaitable[None]]) -> None:
        self._apply = apply
        self._queue: list[tuple[Any, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: Any) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        await fut

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the writers that are ready now join this batch
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await self._apply([item for item, _ in batch])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            else:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_result(None)
