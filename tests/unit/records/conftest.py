from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crmflow.records.sql import SqlRecordStore


@pytest.fixture
async def sql_store(tmp_path: Path) -> AsyncIterator[SqlRecordStore]:
    """A migrated embedded store on a fresh SQLite file."""
    store = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    yield store
    await store.close()
