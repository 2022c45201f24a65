"""Shared fixtures: the suite runs against SQLite and PostgreSQL.

PostgreSQL is found at ``OPENLINES_TEST_POSTGRES_URL`` (default: the local server, database
``test``); each run creates and drops its own database there. When it cannot be reached the
PostgreSQL half is skipped and the summary says so plainly; with
``OPENLINES_TEST_REQUIRE_POSTGRES=1`` (set by CI) that is a failure instead.
"""

import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from core.config import Settings
from core.migrate import upgrade_async
from core.models import Base
from tests.channels.receiver import Receiver, serve_receiver
from tests.channels.telegram_fake import FakeTelegram, serve_telegram

ADMIN_KEY = "test-bootstrap-admin-key-4f9c2a7e1b8d"
# Tests' receivers listen on 127.0.0.1, as in development (``openlines dev`` sets this too);
# tests of the refusal pass ``allow_private=False`` themselves.
os.environ.setdefault("OPENLINES_WEBHOOK_ALLOW_PRIVATE", "true")
POSTGRES_URL = os.environ.get(
    "OPENLINES_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REQUIRE_POSTGRES = os.environ.get("OPENLINES_TEST_REQUIRE_POSTGRES") == "1"
POSTGRES_SKIPPED = "PostgreSQL half skipped"


def _sqlalchemy_url(url: str, database: str) -> str:
    base = url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{database}"


@asynccontextmanager
async def empty_postgres_database() -> AsyncIterator[str]:
    """A new, unmigrated PostgreSQL database (its SQLAlchemy URL), dropped afterwards; the
    test is skipped when the server cannot be reached, or fails under CI's flag."""
    try:
        admin = await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as error:
        message = f"{POSTGRES_SKIPPED}: cannot reach {POSTGRES_URL} ({error})".strip()
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)
    name = f"openlines_test_{uuid.uuid4().hex[:10]}"
    await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _sqlalchemy_url(POSTGRES_URL, name)
    finally:
        await admin.close()
        # A fresh connection: the chaos run restarts the server, which ends the first one.
        async with await psycopg.AsyncConnection.connect(
            POSTGRES_URL, autocommit=True, connect_timeout=10
        ) as admin:
            await admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty database of each backend, shared by the tests of one session."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "openlines.db"
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade_async(url)
        yield url
        return
    async with empty_postgres_database() as url:
        await upgrade_async(url)
        yield url


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[Callable[..., Any]]:
    """Start apps on the test database with settings overrides; tables start empty."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> FastAPI:
            settings = Settings(
                database_url=database_url, bootstrap_admin_key=ADMIN_KEY, **overrides
            )
            app = create_app(settings)
            await stack.enter_async_context(app.router.lifespan_context(app))
            return app

        app = await start()
        await empty_tables(app.state.sessions)
        yield start


async def empty_tables(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            names = ", ".join(table.name for table in Base.metadata.sorted_tables)
            await session.execute(text(f"TRUNCATE {names} CASCADE"))  # ids go on, never reused
        else:
            for table in reversed(Base.metadata.sorted_tables):
                await session.execute(table.delete())
        await session.commit()


@pytest.fixture
async def app(make_app: Callable[..., Any]) -> FastAPI:
    result: FastAPI = await make_app()
    return result


def client_for(app: FastAPI, key: str | None) -> httpx.AsyncClient:
    """An HTTP client talking to the ASGI app in process, with a bearer key (or none)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://openlines.test", headers=headers
    )


@pytest.fixture
async def admin(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def telegram_fake() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API on a local port (``tests/channels/telegram_fake.py``)."""
    async with serve_telegram() as running:
        yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook channel's receiver on a local port (``tests/channels/receiver.py``)."""
    async with serve_receiver() as running:
        yield running


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say plainly when the PostgreSQL half did not run."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {
        str(report.longrepr[2]) for report in skipped if POSTGRES_SKIPPED in str(report.longrepr)
    }
    for reason in sorted(reasons):
        terminalreporter.write_line(
            f"WARNING: {reason.removeprefix('Skipped: ')}", yellow=True, bold=True
        )
