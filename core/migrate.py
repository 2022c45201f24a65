"""Apply the Alembic migrations to a database (``openlines migrate``, ``dev`` and tests)."""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema. Safe to run on every start."""
    command.upgrade(alembic_config(url), "head")


async def upgrade_async(url: str) -> None:
    """``upgrade`` from inside a running event loop (env.py starts its own loop)."""
    await asyncio.to_thread(upgrade, url)
