"""Alembic environment for editor-api. Run through ``editor_api.db.migrate(url)``, which hands
in an open connection; the version table is editor-specific so services can share a database."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from editor_api import db

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through editor_api.db.migrate(url)")

context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table=db.VERSION_TABLE,
    include_name=lambda name, type_, parent: type_ != "table" or (name or "").startswith("editor_"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
