"""Webhook delivery on the time-skipping server: the relay's dispatcher makes the delivery rows
and starts their workflows; a receiver on a local port answers. Retries wait on Temporal's
backoff timers, which the test server skips."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.webhooks import ATTEMPTS, WebhookActivities
from core.events.dispatch import dispatch_batch
from core.events.models import Event, WebhookDelivery, WebhookSubscription
from core.events.publish import record
from tests.workflows.harness import Harness
from worker import build_worker
from workflows.webhook_delivery import workflow_id

SECRET = "receiver-shared-secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny HTTP server answering each POST with the next of ``statuses`` (then 200)."""

    statuses: list[int]
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")[1:]
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(Received(headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver(statuses=[])
    server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
    found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    async with server:
        yield found


@pytest.fixture
async def subscriptions(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[list[int]]:
    """The ids of the subscriptions a test makes; paused after it, so later tests' events
    (the database is shared) are not sent to a receiver that has gone."""
    made: list[int] = []
    yield made
    async with sessions() as session, session.begin():
        await session.execute(
            update(WebhookSubscription).where(WebhookSubscription.id.in_(made)).values(active=False)
        )


async def subscribe(
    sessions: async_sessionmaker[AsyncSession], made: list[int], url: str, events: list[str]
) -> int:
    async with sessions() as session, session.begin():
        row = WebhookSubscription(url=url, events=events, secret=SECRET, active=True)
        session.add(row)
        await session.flush()
        made.append(row.id)
        return row.id


async def happened(sessions: async_sessionmaker[AsyncSession], type: Any, **data: Any) -> int:
    """Record an event as the code where it happens does; its id."""
    async with sessions() as session, session.begin():
        record(session, type, dialog_id=7, operator_ids=[1], **data)
        await session.flush()
        return max(await session.scalars(select(Event.id)))


async def deliveries(
    sessions: async_sessionmaker[AsyncSession], event_id: int
) -> list[WebhookDelivery]:
    async with sessions() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.event_id == event_id)
        return list(await session.scalars(query.order_by(WebhookDelivery.id)))


async def outcome(env: WorkflowEnvironment, delivery_id: int) -> str:
    """The delivery workflow's result, skipping its backoff timers."""
    handle = env.client.get_workflow_handle(workflow_id(delivery_id))
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        result: str = await handle.result()
    return result


async def test_a_refused_delivery_is_retried_and_logged_once(
    harness: Harness, receiver: Receiver, subscriptions: list[int]
):
    sessions, client = harness.sessions, harness.env.client
    receiver.statuses = [500]
    hook = await subscribe(sessions, subscriptions, receiver.url, ["message.created"])
    event_id = await happened(sessions, "message.created", message_id=3)
    # The relay dispatches too; whoever is first, the row and the workflow exist after this.
    await dispatch_batch(sessions, client, harness.task_queue)
    (row,) = await deliveries(sessions, event_id)
    assert await outcome(harness.env, row.id) == "delivered"

    first, second = receiver.requests
    assert first.body == second.body
    sent = json.loads(second.body)
    assert (sent["id"], sent["type"], sent["data"]) == (
        event_id,
        "message.created",
        {"dialog_id": 7, "message_id": 3},
    )
    assert datetime.fromisoformat(sent["created_at"]).tzinfo is not None
    timestamp = second.headers["x-openlines-timestamp"]
    signed = f"{timestamp}.".encode() + second.body  # as the webhook channel signs
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert second.headers["x-openlines-signature"] == f"sha256={expected}"
    assert second.headers["x-openlines-event"] == "message.created"
    assert second.headers["x-openlines-delivery"] == str(row.id)

    (logged,) = await deliveries(sessions, event_id)
    assert (logged.webhook_id, logged.status, logged.attempts) == (hook, "delivered", 2)
    assert (logged.last_status_code, logged.last_error) == (200, None)
    assert logged.delivered_at is not None

    # Delivered is delivered: running the activity again sends nothing.
    again = await ActivityEnvironment().run(WebhookActivities(sessions).deliver, row.id)
    assert again == "delivered"
    assert len(receiver.requests) == 2


async def test_a_4xx_is_final_at_once(
    harness: Harness, receiver: Receiver, subscriptions: list[int]
):
    receiver.statuses = [410]
    await subscribe(harness.sessions, subscriptions, receiver.url, ["*"])
    event_id = await happened(harness.sessions, "lead.created", lead_id=1)
    await dispatch_batch(harness.sessions, harness.env.client, harness.task_queue)
    (row,) = await deliveries(harness.sessions, event_id)
    with pytest.raises(WorkflowFailureError):
        await outcome(harness.env, row.id)
    (logged,) = await deliveries(harness.sessions, event_id)
    assert (logged.status, logged.attempts, logged.last_status_code) == ("failed", 1, 410)
    assert logged.last_error is not None and "410" in logged.last_error
    assert len(receiver.requests) == 1


async def test_after_the_last_attempt_the_log_says_failed(
    harness: Harness, receiver: Receiver, subscriptions: list[int]
):
    receiver.statuses = [503] * ATTEMPTS
    await subscribe(harness.sessions, subscriptions, receiver.url, ["*"])
    event_id = await happened(harness.sessions, "kpi.overdue")
    await dispatch_batch(harness.sessions, harness.env.client, harness.task_queue)
    (row,) = await deliveries(harness.sessions, event_id)
    with pytest.raises(WorkflowFailureError):
        await outcome(harness.env, row.id)
    (logged,) = await deliveries(harness.sessions, event_id)
    assert (logged.status, logged.attempts, logged.last_status_code) == ("failed", ATTEMPTS, 503)
    assert logged.delivered_at is None
    assert len(receiver.requests) == ATTEMPTS


async def test_only_subscriptions_that_want_the_event_and_existed_before_it_get_it(
    harness: Harness, receiver: Receiver, subscriptions: list[int]
):
    sessions = harness.sessions
    wanted = await subscribe(sessions, subscriptions, receiver.url, ["dialog.closed"])
    await subscribe(sessions, subscriptions, receiver.url, ["dialog.created"])
    paused = await subscribe(sessions, subscriptions, receiver.url, ["*"])
    deleted = await subscribe(sessions, subscriptions, receiver.url, ["*"])
    async with sessions() as session, session.begin():
        await session.execute(
            update(WebhookSubscription).where(WebhookSubscription.id == paused).values(active=False)
        )
        await session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == deleted)
            .values(deleted_at=datetime.now(UTC))
        )
    event_id = await happened(sessions, "dialog.closed")
    await subscribe(sessions, subscriptions, receiver.url, ["*"])  # too late for it
    await dispatch_batch(sessions, harness.env.client, harness.task_queue)
    (row,) = await deliveries(sessions, event_id)
    assert row.webhook_id == wanted
    assert await outcome(harness.env, row.id) == "delivered"
    assert [json.loads(r.body)["id"] for r in receiver.requests] == [event_id]


class Unavailable:
    """A Temporal client whose starts fail, as when the server is down."""

    async def start_workflow(self, *args: Any, **kwargs: Any) -> None:
        raise RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b"")


async def test_a_start_that_failed_is_made_by_the_next_round(
    env: WorkflowEnvironment,
    sessions: async_sessionmaker[AsyncSession],
    task_queue: str,
    receiver: Receiver,
    subscriptions: list[int],
):
    """No relay here: the test runs the rounds itself."""
    await subscribe(sessions, subscriptions, receiver.url, ["*"])
    event_id = await happened(sessions, "dialog.created")
    async with build_worker(env.client, task_queue, sessions):
        await dispatch_batch(sessions, cast(Client, Unavailable()), task_queue)
        (row,) = await deliveries(sessions, event_id)
        async with sessions() as session:
            event = await session.get(Event, event_id)
        assert event is not None and event.dispatched_at is None  # to be tried again
        assert row.status == "pending"

        assert await dispatch_batch(sessions, env.client, task_queue) >= 1
        assert await outcome(env, row.id) == "delivered"
        async with sessions() as session:
            event = await session.get(Event, event_id)
        assert event is not None and event.dispatched_at is not None
        assert [d.id for d in await deliveries(sessions, event_id)] == [row.id]  # no second row
        assert len(receiver.requests) == 1
