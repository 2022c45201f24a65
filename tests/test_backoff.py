"""Loops that depend on the database wait longer while it is down and say so once."""

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

import relay
from core.backoff import Backoff
from core.db import create_engine, session_factory


async def test_the_wait_doubles_to_its_cap_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    backoff = Backoff(logging.getLogger("test"), "loop", first_s=0.1, most_s=1.0)
    down = OperationalError("SELECT 1", {}, Exception("connection refused"))
    for _ in range(6):
        await backoff.failed(down)
    backoff.succeeded()
    await backoff.failed(down)
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 0.1]


async def test_a_relay_without_its_database_logs_once_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder where the SQLite file should be: every connection fails.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}")
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="openlines"):
        running = asyncio.create_task(
            relay.run(session_factory(engine), client=None, task_queue="q", stop=stop)  # type: ignore[arg-type]
        )
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.wait_for(running, 10)
    await engine.dispose()
    lines = [r for r in caplog.records if r.name.startswith("openlines")]
    assert len(lines) <= 2  # one for the relay, one for the dispatcher: not one per try
    assert all("the database is unavailable" in r.getMessage() for r in lines)
    assert all(r.exc_info is None for r in lines)
