"""The relay's wake-ups: PostgreSQL tells an idle relay of committed outbox rows; SQLite,
which cannot, leaves it polling."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, session_factory
from core.events.publish import record
from core.models import Outbox
from core.relay_wakeups import POLL_S, Wakeups
from tests.conftest import empty_tables

NOTIFIED_WITHIN_S = 5.0


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    factory = session_factory(engine)
    await empty_tables(factory)
    yield factory
    await engine.dispose()


async def notified(wakeups: Wakeups) -> bool:
    """Whether the wake-up becomes due within ``NOTIFIED_WITHIN_S``."""
    for _ in range(int(NOTIFIED_WITHIN_S / 0.01)):
        if wakeups.due:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_committed_outbox_rows_wake_the_relay_on_postgresql(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with Wakeups(database_url).listening() as wakeups:
        if not database_url.startswith("postgresql"):  # nothing to listen to: it polls
            await asyncio.wait_for(wakeups.wait(asyncio.Event()), timeout=POLL_S * 50)
            assert not wakeups.listening_now
            return
        assert await notified(wakeups)  # the first look covers what came before
        wakeups.looking()

        async with sessions() as session, session.begin():
            session.add(Outbox(kind="wake"))
            await session.flush()
            await asyncio.sleep(0.2)
            assert not wakeups.due, "notified before the row was committed"
        assert await notified(wakeups)
        assert wakeups.listening_now

        # Events do not notify: the commit of every transaction that records one would
        # take PostgreSQL's notification lock (the dispatcher polls instead).
        wakeups.looking()
        async with sessions() as session, session.begin():
            record(session, "dialog.closed")
        await asyncio.sleep(0.2)
        assert not wakeups.due
