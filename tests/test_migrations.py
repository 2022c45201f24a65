"""The migrated schema keeps what the code relies on beyond what ``alembic check`` compares."""

from pathlib import Path

from sqlalchemy import text

from core.db import create_engine
from core.migrate import upgrade_async
from core.models import Base


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
