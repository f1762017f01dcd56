"""Alembic environment of the embedded CRM store (SQLite via aiosqlite, PostgreSQL via psycopg).

``crmflow.records.migrations.migrate(url)`` passes an open connection in
``config.attributes["connection"]``; the ``alembic`` command line (``-x url=...`` or
CRMFLOW_CRM_DATABASE_URL) gets an async engine built here.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from crmflow.db import create_engine
from crmflow.records.tables import CRM_METADATA

VERSION_TABLE = "crm_alembic_version"

target_metadata = CRM_METADATA


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can't ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    conn = context.config.attributes.get("connection")
    if conn is not None:
        _run(conn)
        return
    url = (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("CRMFLOW_CRM_DATABASE_URL")
        or context.config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise SystemExit("crm migrations: pass -x url=... or set CRMFLOW_CRM_DATABASE_URL")
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("crm migrations: offline mode is not supported")
main()
