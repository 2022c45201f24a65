"""The run's own database: a fresh PostgreSQL database when ``OPENLINES_DATABASE_URL`` names
a server (dropped afterwards), else a SQLite file in the run's temporary folder."""

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class Database:
    url: str  # SQLAlchemy async URL for the API and the worker
    backend: str  # sqlite | postgresql


@asynccontextmanager
async def fresh_database(data_dir: Path) -> AsyncIterator[Database]:
    """A new, empty database for one run; a PostgreSQL one is dropped however the run ends."""
    configured = os.environ.get("OPENLINES_DATABASE_URL", "")
    if not configured:
        yield Database(f"sqlite+aiosqlite:///{data_dir / 'openlines.db'}", "sqlite")
        return
    url = make_url(configured)
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"OPENLINES_DATABASE_URL must be PostgreSQL or unset, not {url.drivername}"
        )
    async with postgres_database(configured) as database:
        yield database


@asynccontextmanager
async def postgres_database(server_url: str, prefix: str = "bench") -> AsyncIterator[Database]:
    """A new database on the PostgreSQL server of ``server_url`` (any database name in it is
    only where to connect), dropped however the run ends; its URL names the psycopg driver."""
    url = make_url(server_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"{prefix}_{secrets.token_hex(5)}"
    server = libpq_url(url.render_as_string(hide_password=False))
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Database(url.set(database=name).render_as_string(hide_password=False), "postgresql")
    finally:
        async with await psycopg.AsyncConnection.connect(server, autocommit=True) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg itself takes it (no ``+driver``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
