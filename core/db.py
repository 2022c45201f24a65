"""Async engine and sessions for SQLite (the embedded default) and PostgreSQL."""

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def create_engine(url: str, read_only: bool = False) -> AsyncEngine:
    """An engine tuned for the backend.

    SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions: each transaction
    takes the write lock up front, so the API and the worker processes queue up behind one
    another instead of failing with 'database is locked' when two of them upgrade a read to a
    write. That also makes the routing transaction serial, the SQLite stand-in for the row
    locks PostgreSQL takes.

    ``read_only`` (SQLite): plain deferred ``BEGIN`` and ``query_only``, for reads that must
    not queue behind writers or hold them up (WAL lets them read a snapshot meanwhile).
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()
            dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def printable_url(url: str) -> str:
    """The database URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
