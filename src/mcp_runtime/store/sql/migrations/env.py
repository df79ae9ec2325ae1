"""Alembic environment: the engine comes from the caller (`migrate.upgrade`), never from an ini file."""

from __future__ import annotations

from alembic import context

from mcp_runtime.store.sql.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
