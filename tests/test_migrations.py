"""The migrated schema keeps what the code relies on beyond what ``alembic check`` compares."""

import asyncio
from pathlib import Path

from alembic import command
from sqlalchemy import text

from core.db import create_engine
from core.migrate import alembic_config, upgrade_async
from core.models import Base
from tests.conftest import empty_postgres_database


async def test_ids_are_never_reused_on_sqlite_after_every_migration(tmp_path: Path) -> None:
    """Workflow ids are made from chat ids, so each table with an id keeps AUTOINCREMENT (a
    batch migration that rebuilds a table on SQLite would silently drop it). PostgreSQL
    sequences never go back, so only SQLite needs the check."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}"
    await upgrade_async(url)
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT name, sql FROM sqlite_master"))
        schema = {name: sql or "" for name, sql in rows}
    await engine.dispose()
    with_ids = sorted(name for name, table in Base.metadata.tables.items() if "id" in table.c)
    assert [t for t in with_ids if "AUTOINCREMENT" not in schema[t]] == []


async def test_a_database_from_the_first_0004_loses_its_event_notifications() -> None:
    """The first 0004 also made ``events`` notify the relay (every transaction then took
    PostgreSQL's notify lock at commit); upgrading such a database drops that trigger and keeps
    the one on ``outbox``."""
    async with empty_postgres_database() as url:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0004")
        engine = create_engine(url)
        async with engine.begin() as connection:  # what the first 0004 also did
            await connection.execute(
                text(
                    "CREATE TRIGGER events_notify_relay AFTER INSERT ON events "
                    "FOR EACH STATEMENT EXECUTE FUNCTION openlines_notify_relay()"
                )
            )
        await upgrade_async(url)
        async with engine.connect() as connection:
            triggers = await connection.scalars(
                text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")
            )
            names = list(triggers)
        await engine.dispose()
    assert names == ["outbox_notify_relay"]
