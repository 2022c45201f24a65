"""Long dialogs continue as new, carrying their state: nothing the client or the operator
sent is lost, and the dialog keeps its id, its operator and its timers."""

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowHistory

from core.models import Channel, Message, Outbox
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import DialogState, Reply

LIMIT = 500
# A run continues as new once its history reaches the limit, but signals that keep arriving
# reject the continue-as-new (unhandled command) and land in the run first: measured up to
# ~700 events over with the relay signalling flat out. One run of 5,000 would hold > 15,000.
SLACK = 1500
SLACK_SMALL = 100  # a handful of updates in flight when the limit is reached


async def runs(
    harness: Harness, handle: WorkflowHandle[Any, Any], first_run_id: str
) -> list[WorkflowHistory]:
    """The history of each run of the chat's workflow, from ``first_run_id`` on."""
    histories = []
    run_id: str | None = first_run_id
    while run_id:
        run = harness.env.client.get_workflow_handle(handle.id, run_id=run_id)
        histories.append(await run.fetch_history())
        last = histories[-1].events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


def updates_completed(histories: list[WorkflowHistory]) -> int:
    completed = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    return sum(event.event_type == completed for h in histories for event in h.events)


async def client_messages_in_db(harness: Harness, dialog_id: int) -> int:
    async with harness.sessions() as session:
        query = select(func.count(Message.id)).where(
            Message.dialog_id == dialog_id, Message.author == "client"
        )
        return await session.scalar(query) or 0


async def all_signalled(harness: Harness, dialog_id: int, timeout_s: float = 120.0) -> None:
    """Wait until the relay has handed every outbox row of the dialog to Temporal: the
    workflow sees those signals before any update sent afterwards. (No queries: on the test
    server a query that races a continue-as-new can hang until its RPC times out.)"""
    deadline = asyncio.get_running_loop().time() + timeout_s
    query = select(func.count(Outbox.id)).where(
        Outbox.dialog_id == dialog_id, Outbox.delivered_at.is_(None)
    )
    while True:
        async with harness.sessions() as session:
            if not await session.scalar(query):
                return
        assert asyncio.get_running_loop().time() < deadline, "outbox rows stay undelivered"
        await asyncio.sleep(0.05)


async def accepted_dialog(
    harness: Harness,
) -> tuple[Channel, WorkflowHandle[Any, Any], DialogState, str]:
    """A dialog in chat ``chat-1`` accepted by the line's only operator, and its first run."""
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {"welcome": {"enabled": False}}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    first_run = (await dialog.describe()).run_id
    assert first_run is not None
    return channel, dialog, await harness.accept(dialog, a), first_run


def reply(dialog_id: int, operator_id: int, message_id: int) -> Reply:
    """Straight to the update: harness.reply queries the dialog first."""
    return Reply(dialog_id=dialog_id, operator_id=operator_id, message_id=message_id)


@pytest.mark.max_history_events(LIMIT)
async def test_a_dialog_of_5000_client_messages_keeps_every_message_across_runs(
    harness: Harness,
):
    channel, dialog, accepted, first_run = await accepted_dialog(harness)
    a = accepted.operator_id
    assert a is not None

    started = time.monotonic()
    for i in range(4999):
        await harness.client_writes(channel, "chat-1", f"message {i}")
    filed = time.monotonic()
    await all_signalled(harness, accepted.dialog_id)
    print(f"filed in {filed - started:.1f}s, delivered {time.monotonic() - filed:.1f}s later")

    row = await harness.dialog_row(accepted.dialog_id, lambda r: r.status == "client_waiting")
    assert row.operator_id == a
    assert await client_messages_in_db(harness, accepted.dialog_id) == 5000
    update = reply(accepted.dialog_id, a, 1)
    replied = await dialog.execute_update(DialogWorkflow.reply, update)
    assert (replied.dialog_id, replied.operator_id, replied.client_messages) == (
        accepted.dialog_id,
        a,
        5000,
    )
    assert replied.status == "operator_replied" and set(replied.deadlines) == {
        "expiry",
        "inactivity",
    }
    lengths = [len(h.events) for h in await runs(harness, dialog, first_run)]
    print(f"{len(lengths)} runs, history lengths {lengths}")
    assert len(lengths) >= 5 and max(lengths) < LIMIT + SLACK


@pytest.mark.max_history_events(60)
async def test_replies_and_client_messages_sent_across_runs_are_all_kept(harness: Harness):
    channel, dialog, accepted, first_run = await accepted_dialog(harness)
    a = accepted.operator_id
    assert a is not None

    async def client(i: int) -> None:
        for j in range(3):
            await harness.client_writes(channel, "chat-1", f"message {i}.{j}")

    async def operator(i: int) -> str:
        update = reply(accepted.dialog_id, a, i)
        replied = await dialog.execute_update(DialogWorkflow.reply, update)
        return str(replied.status)

    statuses = [(await asyncio.gather(client(i), operator(i)))[1] for i in range(60)]

    assert statuses == ["operator_replied"] * 60
    await all_signalled(harness, accepted.dialog_id)
    assert await client_messages_in_db(harness, accepted.dialog_id) == 181
    last = await dialog.execute_update(DialogWorkflow.reply, reply(accepted.dialog_id, a, 60))
    assert (last.dialog_id, last.operator_id, last.status, last.client_messages) == (
        accepted.dialog_id,
        a,
        "operator_replied",
        181,
    )
    histories = await runs(harness, dialog, first_run)
    assert len(histories) >= 3
    assert updates_completed(histories) == 62  # the accept and every reply, once each


@pytest.mark.max_history_events(100)
async def test_a_run_that_gets_only_operator_replies_also_continues_as_new(harness: Harness):
    _, dialog, accepted, first_run = await accepted_dialog(harness)
    a = accepted.operator_id
    assert a is not None

    for i in range(60):
        await dialog.execute_update(DialogWorkflow.reply, reply(accepted.dialog_id, a, i))

    histories = await runs(harness, dialog, first_run)
    assert updates_completed(histories) == 61
    assert len(histories) >= 2 and max(len(h.events) for h in histories) < 100 + SLACK_SMALL
