"""The migrated schema keeps what the code relies on beyond what ``alembic check`` compares."""

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text

from core.db import create_engine, session_factory
from core.line_settings import LineSettings
from core.migrate import alembic_config, upgrade_async
from core.models import ApiKey, Base, Line
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_bots_named_before_bots_existed_are_switched_off(
    backend: str, tmp_path: Path
) -> None:
    """Before 0006 a line could enable, and a key be bound to, a bot id that named nothing;
    upgrading switches such a line's bot off and revokes such keys, so neither attaches to
    whichever bot later gets that id."""
    async with AsyncExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}"
        else:
            url = await stack.enter_async_context(empty_postgres_database())
        await asyncio.to_thread(command.upgrade, alembic_config(url), "0005")
        engine = create_engine(url)
        settings = LineSettings.model_validate(
            {"name": "Support", "bot": {"enabled": True, "bot_id": 7}}
        ).dump()
        async with session_factory(engine)() as session, session.begin():
            session.add(Line(settings=settings))
            session.add(ApiKey(role="bot", bot_id=7, prefix="ol_bot", key_hash="0" * 64))
            session.add(ApiKey(role="admin", prefix="ol_adm", key_hash="1" * 64))
        await upgrade_async(url)
        async with session_factory(engine)() as session:
            line = await session.scalar(select(Line))
            keys = {key.role: key.revoked_at for key in await session.scalars(select(ApiKey))}
        await engine.dispose()
    assert line is not None
    assert line.settings["bot"] == {**settings["bot"], "enabled": False}
    assert {k: v for k, v in line.settings.items() if k != "bot"} == {
        k: v for k, v in settings.items() if k != "bot"
    }
    assert keys["bot"] is not None and keys["admin"] is None
