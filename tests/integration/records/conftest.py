"""Backends for the CRM contract suite: the same tests run against every adapter.

- ``sqlite``: SqlRecordStore on a SQLite file (migrated with Alembic)
- ``postgres``: SqlRecordStore on the session's PostgreSQL database
- ``grpc``: GrpcRecordStore talking to a real CrmService server on a real port, backed by a
  SqlRecordStore (SQLite)

Each backend lives for the module; tests isolate themselves by tenant id. ``Backend.sql`` is the
SQL store underneath, used to look at the outbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crmflow.grpc.server import start_server
from crmflow.model.records import ChangeEvent
from crmflow.records.grpc_adapter import GrpcRecordStore
from crmflow.records.outbox import OutboxDispatcher
from crmflow.records.port import RecordStore
from crmflow.records.servicer import binding
from crmflow.records.sql import SqlRecordStore
from crmflow.settings import Settings


@dataclass
class Backend:
    name: str
    store: RecordStore
    sql: SqlRecordStore

    async def events(self, tenant_id: str) -> list[ChangeEvent]:
        async def never(_: list[ChangeEvent]) -> None:  # pragma: no cover - not called
            raise AssertionError

        return await OutboxDispatcher(self.sql, never).pending(tenant_id)


async def _sqlite(tmp: Path) -> SqlRecordStore:
    return await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp / 'crm.db'}")


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "grpc"],
)
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    tmp = tmp_path_factory.mktemp(f"crm-{request.param}")
    if request.param == "sqlite":
        sql = await _sqlite(tmp)
        yield Backend("sqlite", sql, sql)
        await sql.close()
    elif request.param == "postgres":
        sql = await SqlRecordStore.open(request.getfixturevalue("pg_url"))
        yield Backend("postgres", sql, sql)
        await sql.close()
    else:
        sql = await _sqlite(tmp)
        running = await start_server([binding(sql)], settings=Settings(), port=0)
        client = GrpcRecordStore.connect(f"127.0.0.1:{running.port}")
        yield Backend("grpc", client, sql)
        await client.close()
        await running.stop(0)
        await sql.close()


@pytest.fixture
def store(backend: Backend) -> RecordStore:
    return backend.store
