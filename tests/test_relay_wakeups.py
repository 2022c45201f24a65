"""The relay's wake-ups: PostgreSQL tells an idle relay of committed outbox and event rows;
SQLite, which cannot, leaves it polling."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, session_factory
from core.events.publish import record
from core.models import Outbox
from core.relay_wakeups import POLL_S, Wakeup, Wakeups
from tests.conftest import empty_tables

NOTIFIED_WITHIN_S = 5.0


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    factory = session_factory(engine)
    await empty_tables(factory)
    yield factory
    await engine.dispose()


async def notified(wakeup: Wakeup) -> bool:
    """Whether the wake-up becomes due within ``NOTIFIED_WITHIN_S``."""
    for _ in range(int(NOTIFIED_WITHIN_S / 0.01)):
        if wakeup.due:
            return True
        await asyncio.sleep(0.01)
    return False


async def test_committed_rows_wake_the_relay_on_postgresql(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with Wakeups(database_url).listening() as wakeups:
        postgres = database_url.startswith("postgresql")
        if not postgres:  # nothing to listen to: the relay polls
            stop = asyncio.Event()
            await asyncio.wait_for(wakeups.outbox.wait(stop), timeout=POLL_S * 50)
            assert not wakeups.listening_now
            return
        assert await notified(wakeups.outbox)  # the first look covers what came before
        assert await notified(wakeups.events)
        wakeups.outbox.looking()
        wakeups.events.looking()

        async with sessions() as session, session.begin():
            session.add(Outbox(kind="wake"))
            await session.flush()
            await asyncio.sleep(0.2)
            assert not wakeups.outbox.due, "notified before the row was committed"
        assert await notified(wakeups.outbox)
        assert not wakeups.events.due

        wakeups.outbox.looking()
        async with sessions() as session, session.begin():
            record(session, "dialog.closed")
        assert await notified(wakeups.events)
        assert not wakeups.outbox.due
        assert wakeups.listening_now
