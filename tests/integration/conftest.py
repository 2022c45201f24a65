"""Integration: the real app, worker and outbox relay against the Temporal dev server (the
installed ``temporal`` binary), on SQLite and on PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import relay
from core import temporal_dev_server
from core.local_http import free_port
from core.relay_wakeups import Wakeups
from tests.conftest import ADMIN_KEY, client_for
from worker import build_worker


@pytest.fixture(scope="session")
async def temporal(
    tmp_path_factory: pytest.TempPathFactory, database_url: str
) -> AsyncIterator[WorkflowEnvironment]:
    """The dev server as ``openlines dev`` starts it (logging to a file, not the terminal).

    One per database: workflow ids come from database ids, and two databases share ids, just
    as two installs must not share a Temporal namespace.
    """
    folder = tmp_path_factory.mktemp("temporal")
    port, ui_port = free_port(), free_port()
    server = temporal_dev_server.start(folder / "temporal.db", port, ui_port, folder / "log")
    try:
        client = await temporal_dev_server.wait_until_serving(
            server,
            lambda: Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter),
            timeout_s=60,
        )
        await temporal_dev_server.ensure_search_attributes(client)
        yield WorkflowEnvironment.from_client(client)
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def task_queue() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def running_worker(
    app: FastAPI, temporal: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[None]:
    """The worker and relay, as ``openlines worker`` runs them, on the app's database
    (woken by PostgreSQL's notifications there, polling on SQLite)."""
    stop = asyncio.Event()
    database_url = app.state.settings.resolved_database_url
    async with (
        build_worker(temporal.client, task_queue, app.state.sessions),
        Wakeups(database_url).listening() as wakeups,
    ):
        relaying = asyncio.create_task(
            relay.run(app.state.sessions, temporal.client, task_queue, stop, wakeups=wakeups)
        )
        try:
            yield
        finally:
            stop.set()
            await relaying


@pytest.fixture
async def system(
    make_app: Callable[..., Awaitable[FastAPI]], temporal: WorkflowEnvironment, task_queue: str
) -> AsyncIterator["System"]:
    app = await make_app(task_queue=task_queue)
    app.state.temporal = temporal.client
    async with running_worker(app, temporal, task_queue), client_for(app, ADMIN_KEY) as admin:
        yield System(app, admin, temporal, task_queue)


class System:
    """The running system seen through its HTTP API, plus a few ways to look inside."""

    def __init__(
        self, app: FastAPI, admin: httpx.AsyncClient, temporal: WorkflowEnvironment, task_queue: str
    ) -> None:
        self.app, self.admin, self.temporal, self.task_queue = app, admin, temporal, task_queue

    async def operator(self, name: str = "Ann", online: bool = True) -> int:
        """A new operator, online (at work: lines check availability by default) unless not."""
        response = await self.admin.post("/v1/operators", json={"name": name})
        assert response.status_code == 201, response.text
        operator_id: int = response.json()["id"]
        if online:
            path = f"/v1/operators/{operator_id}/presence"
            went_online = await self.admin.put(path, json={"status": "online"})
            assert went_online.status_code == 200, went_online.text
        return operator_id

    async def line(
        self, operator_ids: list[int], settings: dict[str, Any] | None = None, **queue: Any
    ) -> tuple[int, int, str]:
        """A line with these members (``settings``: its other groups) and an api channel:
        (line id, channel id, secret)."""
        members = [{"type": "operator", "id": i} for i in operator_ids]
        body = {**(settings or {}), "queue": {"members": members, **queue}}
        response = await self.admin.post("/v1/lines", json=body)
        assert response.status_code == 201, response.text
        line_id = response.json()["id"]
        channel = await self.admin.post(f"/v1/lines/{line_id}/channels", json={"type": "api"})
        assert channel.status_code == 201, channel.text
        return line_id, channel.json()["id"], channel.json()["secret"]

    async def client_writes(
        self, channel_id: int, secret: str, chat: str, message: str, text: str = "Hello"
    ) -> httpx.Response:
        return await self.admin.post(
            f"/v1/channels/{channel_id}/messages",
            json={"chat": {"external_id": chat}, "message": {"external_id": message, "text": text}},
            headers={"Authorization": f"Bearer {secret}"},
        )

    async def dialog_when(
        self, dialog_id: int, check: Callable[[dict[str, Any]], bool], timeout_s: float = 15
    ) -> dict[str, Any]:
        """GET the dialog until ``check`` holds."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            dialog: dict[str, Any] = (await self.admin.get(f"/v1/dialogs/{dialog_id}")).json()
            if check(dialog):
                return dialog
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never held; last: {dialog}")
            await asyncio.sleep(0.05)
