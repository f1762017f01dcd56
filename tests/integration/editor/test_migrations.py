"""Migrations reach the models' schema on both databases and are idempotent."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from editor_api import db
from sqlalchemy import Connection
from sqlmodel import SQLModel

from crmflow.db import create_engine


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"version_table": db.VERSION_TABLE})
    diffs = compare_metadata(ctx, SQLModel.metadata)
    # Only editor-api's own tables (other services register theirs on the same metadata).
    return [d for d in diffs if "editor_" in repr(d)]


async def test_migrations_match_models_and_are_idempotent(db_url: str) -> None:
    await db.migrate(db_url)
    await db.migrate(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()
