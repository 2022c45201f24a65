"""Operator actions decided by the database, and what happens while their transaction runs:
a client message that arrives meanwhile is not overwritten, an offer this run has not heard
of yet can be accepted, an action past its deadline is refused, a transfer to a line that
cannot take dialogs changes nothing."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from temporalio.client import WorkflowHandle

from activities.auto_replies import AutoReplyActivities
from activities.dialogs import DialogActivities
from core.models import Dialog, Line
from tests.workflows import gates
from tests.workflows.gates import Gate
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import OperatorAction, Reply, Transfer

Handle = WorkflowHandle[Any, Any]


@pytest.fixture
def reply_gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    return gates.install(monkeypatch, DialogActivities, "reply")


@pytest.fixture
def closing_gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    return gates.install(monkeypatch, AutoReplyActivities, "start_closing")


async def accepted(
    harness: Harness, settings: dict[str, Any] | None = None
) -> tuple[Any, Handle, int]:
    (operator,) = await harness.operators(1)
    channel = await harness.line([operator], settings, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [operator])
    await harness.accept(dialog, operator)
    return channel, dialog, operator


async def test_a_client_question_sent_during_a_reply_stays_unanswered(
    reply_gate: Gate, harness: Harness
):
    channel, dialog, operator = await accepted(harness)
    reply_gate.close()
    replying = asyncio.create_task(harness.reply(dialog, operator))
    await reply_gate.entered.wait()
    await harness.client_writes(channel, "chat-1", "And one more question?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    reply_gate.open.set()

    replied = await replying
    assert replied.status == "client_followup"
    assert replied.unanswered_since is not None  # the question waits: the expiry counts from it
    assert "inactivity" not in replied.deadlines
    await harness.row_shows(dialog, "client_followup")


async def test_a_client_message_sent_during_a_close_keeps_the_dialog_open(
    closing_gate: Gate, harness: Harness
):
    channel, dialog, operator = await accepted(harness)
    closing_gate.close()
    closing = asyncio.create_task(harness.close(dialog, operator))
    await closing_gate.entered.wait()
    await harness.client_writes(channel, "chat-1", "Wait, one more thing")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    closing_gate.open.set()

    refused = await harness.refused(closing)
    assert "has just written" in refused
    state = await harness.state(dialog)
    assert (state.status, state.operator_id) == ("client_waiting", operator)
    assert state.closing_since is None


async def test_an_offer_the_run_has_not_heard_of_yet_can_be_accepted(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="strictly", handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    async with harness.sessions() as session, session.begin():  # routing moved it; no wake yet
        await session.execute(
            update(Dialog).where(Dialog.id == state.dialog_id).values(offered_to=[b], holder_id=b)
        )

    taken = await harness.accept(dialog, b)

    assert (taken.status, taken.operator_id, taken.offered_to) == ("accepted", b, [])
    refused = await harness.refused(harness.accept(dialog, a))
    assert "is not offered to operator" in refused


async def test_an_action_past_its_deadline_is_refused(harness: Harness):
    _, dialog, operator = await accepted(harness)
    state = await harness.state(dialog)
    late = Reply(
        dialog_id=state.dialog_id,
        operator_id=operator,
        message_id=0,
        expires_at=await harness.now() - timedelta(seconds=1),
    )

    refused = await harness.refused(dialog.execute_update(DialogWorkflow.reply, late))

    assert "after its deadline" in refused
    assert (await harness.state(dialog)).status == "accepted"


async def test_a_transfer_to_a_deleted_or_inactive_line_changes_nothing(harness: Harness):
    _, dialog, operator = await accepted(harness)
    (other_operator,) = await harness.operators(1)
    deleted = await harness.line([other_operator])
    inactive = await harness.line([other_operator])
    async with harness.sessions() as session, session.begin():
        await session.execute(
            update(Line).where(Line.id == deleted.line_id).values(deleted_at=datetime.now(UTC))
        )
    await harness.change_settings(inactive.line_id, {"active": False})
    state = await harness.state(dialog)

    for line_id, reason in (
        (deleted.line_id, "does not exist"),
        (inactive.line_id, "is inactive"),
        (10_000, "does not exist"),
    ):
        transfer = Transfer(dialog_id=state.dialog_id, operator_id=operator, to_line_id=line_id)
        refused = await harness.refused(dialog.execute_update(DialogWorkflow.transfer, transfer))
        assert reason in refused

    after = await harness.state(dialog)
    assert (after.status, after.line_id, after.operator_id) == ("accepted", state.line_id, operator)
    row = await harness.row(dialog)
    assert (row.line_id, row.operator_id) == (state.line_id, operator)


async def test_skipping_an_offer_to_all_leaves_it_with_the_others(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line([a, b, c], distribution="all", handover_after=600)
    dialog = await harness.client_writes(channel, "chat-1")
    offered = await harness.offered(dialog, [a, b, c])

    skipped = await harness.skip(dialog, a)

    assert skipped.offered_to == [b, c]
    assert skipped.deadlines["handover"] == offered.deadlines["handover"]
    state = await dialog.execute_update(
        DialogWorkflow.skip, OperatorAction(dialog_id=skipped.dialog_id, operator_id=b)
    )
    assert state.offered_to == [c]


async def test_a_queued_dialog_a_supervisor_closes_while_the_client_writes_stays_queued(
    closing_gate: Gate, harness: Harness
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    closing_gate.close()
    closing = asyncio.create_task(
        dialog.execute_update(
            DialogWorkflow.close, OperatorAction(dialog_id=state.dialog_id, by_supervisor=True)
        )
    )
    await closing_gate.entered.wait()
    await harness.client_writes(channel, "chat-1", "Hello? Anyone?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    closing_gate.open.set()

    assert "has just written" in await harness.refused(closing)
    row = await harness.row_shows(dialog, "queued")  # the close's transaction is undone
    assert (row.operator_id, row.closed_at) == (None, None)
    assert (await harness.offered(dialog, [a])).status == "queued"
