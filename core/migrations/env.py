"""Alembic environment: runs migrations on the async engine of the configured database."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.config import get_settings
from core.db import create_engine
from core.models import Base

config = context.config
target_metadata = Base.metadata
# PostgreSQL advisory lock key ("openlines" in ASCII, cut to 63 bits): one migration at a time.
MIGRATION_LOCK = 0x6F70656E6C696E65


def _run(connection: Connection) -> None:
    # Batch mode lets later ALTERs run on SQLite, which cannot alter most columns in place.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Every API and worker pod migrates as it starts (an init container); the others
            # wait here, then find the schema current. Held until the transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url, statement_timeout_s=None)  # a migration takes its time
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


url = config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
asyncio.run(_run_async(url))
