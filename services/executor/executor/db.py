"""The executor's database: Alembic migrations and the engine/session set-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from crmflow.db import create_engine

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "executor_alembic_version"  # own table: several services may share one database


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(url: str) -> None:
    """Create or upgrade the executor's tables (idempotent)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(_config(c), "head"))
    finally:
        await engine.dispose()
