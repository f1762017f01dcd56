"""A main executor worker in its own process, for the crash test (killed with SIGKILL).

    python -m tests.integration.executor.worker_proc <data_dir> <temporal_address> <queue> [marker]

With a marker path, the first CRM update is committed, the marker file is written, and the
process then hangs inside the activity — the test kills it right there.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from executor import dispatch
from executor.activities.base import Deps
from executor.db import migrate
from executor.history import History
from executor.resolver import LocalTokens
from executor.worker import main_worker

from crmflow.db import create_engine
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings, TemporalSettings
from crmflow.temporal.client import connect


async def main(data_dir: str, address: str, queue: str, marker: str = "") -> None:
    # Short activity timeout so the retry after the crash comes quickly.
    original = dispatch.ACTION_ACTIVITIES["set_property"]
    dispatch.ACTION_ACTIVITIES["set_property"] = type(original)(
        "set_property", start_to_close=timedelta(seconds=3), retry=original.retry
    )
    temporal = TemporalSettings(address=address).model_copy(update={"task_queue": queue})
    settings = Settings(data_dir=Path(data_dir), temporal=temporal)
    store = await SqlRecordStore.open(settings.crm_url(), migrate=True)
    if marker:
        real_update = store.update

        async def update(*args: Any, **kw: Any) -> Any:
            rec = await real_update(*args, **kw)
            Path(marker).write_text("written")  # noqa: ASYNC240 - one tiny test-only write
            await asyncio.sleep(3600)  # killed here, after the CRM committed the write
            return rec

        store.update = update  # type: ignore[method-assign]
    url = settings.service_database_url("executor")
    await migrate(url)
    history = History(create_engine(url))
    deps = Deps(settings=settings, store=store, resolver=LocalTokens(store), history=history)
    client = await connect(settings.temporal)
    await main_worker(client, deps).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
