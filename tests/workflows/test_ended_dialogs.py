"""Ended is ended (design.md, invariant 9): a message delivered again after its dialog closed
never starts, reopens or changes a run for it, and a close waits for every message filed
under the dialog, whatever order they reach the workflow in."""

from typing import Any

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

import relay
from core.events.models import Event
from core.models import Dialog, Message, Outbox
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import DialogStart

Handle = WorkflowHandle[Any, Any]


async def closed_dialog(harness: Harness, reason: str) -> tuple[Handle, int, int]:
    """A dialog accepted by its only operator and then closed (``operator`` or ``spam``):
    the handle, the dialog id, the operator."""
    (operator,) = await harness.operators(1)
    channel = await harness.line([operator], {"rating_wait": 0}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [operator])
    await harness.accept(dialog, operator)
    if reason == "spam":
        await harness._act(dialog, DialogWorkflow.spam, operator)
    else:
        await harness.close(dialog, operator)
    state = await harness.result(dialog)
    return dialog, state.dialog_id, operator


async def snapshot(harness: Harness, dialog_id: int) -> tuple[Any, ...]:
    row = await harness.dialog_row(dialog_id)
    async with harness.sessions() as session:
        events = await session.scalar(
            select(Event.id).where(Event.dialog_id == dialog_id).order_by(Event.id.desc()).limit(1)
        )
        messages = await session.scalars(select(Message.id).where(Message.dialog_id == dialog_id))
        count = len(list(messages))
    return (
        row.status,
        row.close_reason,
        row.closed_at,
        row.operator_id,
        row.offered_to,
        events,
        count,
    )


async def deliver_again(harness: Harness, dialog_id: int) -> None:
    """The dialog's client message is sent again, as the relay does after a failed mark."""
    async with harness.sessions() as session, session.begin():
        row = await session.scalar(
            select(Outbox).where(Outbox.dialog_id == dialog_id, Outbox.message_id.is_not(None))
        )
        assert row is not None and row.delivered_at is not None
        row.delivered_at, row.claimed_until = None, None


async def test_a_redelivered_message_of_a_closed_dialog_starts_no_run(harness: Harness):
    dialog, dialog_id, _ = await closed_dialog(harness, "operator")
    first_run = (await dialog.describe()).run_id
    before = await snapshot(harness, dialog_id)

    await deliver_again(harness, dialog_id)
    await harness.until(lambda: _undelivered(harness), 0)

    described = await harness.env.client.get_workflow_handle(dialog.id).describe()
    assert (described.run_id, described.status) == (first_run, WorkflowExecutionStatus.COMPLETED)
    assert await snapshot(harness, dialog_id) == before


async def _undelivered(harness: Harness) -> list[int]:
    async with harness.sessions() as session:
        return list(await session.scalars(select(Outbox.id).where(Outbox.delivered_at.is_(None))))


async def test_a_run_started_for_a_closed_dialog_ends_at_once_and_changes_nothing(
    harness: Harness,
):
    """A relay that read the row while the dialog was still open signals after it closed."""
    for reason in ("operator", "spam"):
        dialog, dialog_id, _ = await closed_dialog(harness, reason)
        before = await snapshot(harness, dialog_id)
        async with harness.sessions() as session:
            row = await session.get(Dialog, dialog_id)
            message = await session.scalar(select(Message).where(Message.dialog_id == dialog_id))
        assert row is not None and message is not None
        row.status = "queued"  # as the relay saw it when it claimed the row
        await relay._client_message(
            harness.env.client,
            harness.task_queue,
            DialogStart.model_fields["max_history_events"].default,
            row,
            message,
        )
        zombie = await harness.result(
            harness.env.client.get_workflow_handle_for(DialogWorkflow.run, dialog.id)
        )
        expected = ("spam", None) if reason == "spam" else ("closed", "operator")
        assert (zombie.status, zombie.close_reason) == expected
        assert await snapshot(harness, dialog_id) == before


async def test_a_close_waits_for_a_message_that_arrives_out_of_order(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
):
    """Two workers deliver the chat's messages out of order: the one holding the earlier
    message is slow, so the later one reaches the workflow first."""
    (operator,) = await harness.operators(1)
    channel = await harness.line([operator], {"rating_wait": 0}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [operator])
    await harness.accept(dialog, operator)
    deliver = relay._client_message
    held: list[tuple[Any, ...]] = []

    async def slow_worker(*args: Any) -> None:
        if args[-1].text == "first":
            held.append(args)  # another worker claimed it and has not signalled yet
        else:
            await deliver(*args)

    monkeypatch.setattr(relay, "_client_message", slow_worker)
    await harness.client_writes(channel, "chat-1", "first")
    await harness.client_writes(channel, "chat-1", "second")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    assert len(held) == 1

    closing = await harness.close(dialog, operator)
    assert closing.status == "closing"  # the database refused the close: one message unseen

    await deliver(*held[0])
    reopened = await harness.eventually(dialog, lambda s: s.client_messages == 3)
    assert (reopened.status, reopened.operator_id) == ("client_waiting", operator)
    row = await harness.row_shows(dialog, "client_waiting")
    assert row.closed_at is None
