"""Async engine and sessions for SQLite (the embedded default) and PostgreSQL."""

from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

CONNECT_TIMEOUT_S = 5
"""PostgreSQL: a connection attempt gives up after this (the request answers 503)."""
POOL_TIMEOUT_S = 10
"""A request waits this long for a free pooled connection, then gives up (503)."""
STATEMENT_TIMEOUT_S = 30
"""PostgreSQL: a statement (lock waits included) is cancelled after this; migrations have
no such limit."""


def create_engine(
    url: str, read_only: bool = False, statement_timeout_s: int | None = STATEMENT_TIMEOUT_S
) -> AsyncEngine:
    """An engine tuned for the backend.

    SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions: each transaction
    takes the write lock up front, so the API and the worker processes queue up behind one
    another instead of failing with 'database is locked' when two of them upgrade a read to a
    write. That also makes the routing transaction serial, the SQLite stand-in for the row
    locks PostgreSQL takes.

    ``read_only`` (SQLite): plain deferred ``BEGIN`` and ``query_only``, for reads that must
    not queue behind writers or hold them up (WAL lets them read a snapshot meanwhile).

    The constructor is looked up on its module at each call, so the one that tracing
    (``core.tracing``) instruments is the one used.
    """
    if url.startswith("sqlite"):
        engine = sqlalchemy_asyncio.create_async_engine(url, connect_args={"timeout": 30})

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
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
    if statement_timeout_s is not None:
        connect_args["options"] = f"-c statement_timeout={statement_timeout_s * 1000}"
    return sqlalchemy_asyncio.create_async_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=POOL_TIMEOUT_S,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def printable_url(url: str) -> str:
    """The database URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)
