"""Alembic migrations of the embedded CRM store; ``await migrate(url)`` brings a DB to head."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from crmflow.db import create_engine

HERE = Path(__file__).parent

# Alembic announces every plugin it loads at INFO; keep "Running upgrade ..." lines, drop those.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


async def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the CRM database at ``url`` (sqlite+aiosqlite or postgresql+psycopg)."""
    engine = create_engine(url)

    def upgrade(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()
