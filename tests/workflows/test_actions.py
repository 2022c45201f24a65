"""Operators acting on a dialog: skip, reply, accept and close, who may do them, and what a
close leaves behind."""

from datetime import timedelta

from core.models import Dialog
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import OperatorAction


async def test_skip_moves_the_offer_to_the_next_operator(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line([a, b, c], distribution="strictly", handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    skipped = await harness.skip(dialog, a)

    assert (skipped.status, skipped.operator_id, skipped.offered_to) == ("queued", None, [b])
    assert "is not offered to operator" in await harness.refused(harness.accept(dialog, a))
    await harness.skip(dialog, b)
    await harness.offered(dialog, [c])


async def test_evenly_skip_goes_to_someone_else(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="evenly", handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    skipped = await harness.skip(dialog, a)
    assert skipped.offered_to == [b]


async def test_a_reply_to_an_unaccepted_dialog_accepts_it(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="all")
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a, b])

    replied = await harness.reply(dialog, b)

    assert (replied.status, replied.operator_id, replied.offered_to) == ("operator_replied", b, [])
    assert replied.answered
    # no handover: the inactivity timer runs, the expiry behind it
    await harness.eventually(dialog, lambda s: set(s.deadlines) == {"expiry", "inactivity"})
    await harness.sleep(3600)
    state = await harness.state(dialog)
    assert (state.status, state.operator_id, state.offered_to) == ("operator_replied", b, [])
    row = await harness.row_shows(dialog, "operator_replied")
    assert (row.operator_id, row.answered, row.offered_to) == (b, True, [])
    refused = await harness.refused(harness.reply(dialog, a))
    assert f"is not offered to operator {a}" in refused


async def test_accept_by_an_operator_not_offered_is_refused(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="strictly", handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])

    refused = await harness.refused(harness.accept(dialog, b))

    assert f"is not offered to operator {b}" in refused
    state = await harness.state(dialog)
    assert (state.status, state.operator_id, state.offered_to) == ("queued", None, [a])
    accepted = await harness.accept(dialog, a)
    assert (accepted.status, accepted.operator_id) == ("accepted", a)


async def test_close_by_someone_other_than_the_owner_is_refused(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="all")
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a, b])
    assert "is not held by operator" in await harness.refused(harness.close(dialog, a))
    await harness.accept(dialog, a)

    refused = await harness.refused(harness.close(dialog, b))

    assert f"is not held by operator {b}" in refused
    state = await harness.state(dialog)
    assert (state.status, state.operator_id) == ("accepted", a)


async def test_a_closed_dialog_is_closed_in_the_database_and_in_the_result(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a])
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)

    closing = await harness.close(dialog, a)

    assert (closing.status, closing.close_reason) == ("closing", "operator")
    assert closing.closing_since is not None
    assert closing.deadlines == {"rating_wait": closing.closing_since + timedelta(seconds=600)}
    result = await harness.result(dialog)  # after rating_wait
    closed = closing
    assert (result.dialog_id, result.status, result.close_reason) == (
        closed.dialog_id,
        "closed",
        "operator",
    )
    assert result.operator_id == a
    async with harness.sessions() as session:
        row = await session.get(Dialog, closed.dialog_id)
    assert row is not None
    assert (row.status, row.close_reason, row.operator_id) == ("closed", "operator", a)
    assert row.closed_at is not None and row.offered_to == [] and row.waiting_since is None


async def test_a_client_message_after_the_close_starts_a_new_dialog_in_the_chat(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)
    closed = await harness.close(dialog, a)
    await harness.result(dialog)
    first_run = (await dialog.describe()).run_id

    again = await harness.client_writes(channel, "chat-1", "I have another question")

    assert again.id == dialog.id  # the chat's workflow id
    state = await harness.eventually(again, lambda s: s.dialog_id != closed.dialog_id)
    assert state.dialog_id > closed.dialog_id and state.chat_id == closed.chat_id
    assert (state.status, state.operator_id, state.answered) == ("queued", None, False)
    assert len(state.seen_message_ids) == 1
    assert (await again.describe()).run_id != first_run
    await harness.offered(again, [a])  # a fresh dialog goes to the queue again
    async with harness.sessions() as session:
        old = await session.get(Dialog, closed.dialog_id)
    assert old is not None and old.status == "closed"


async def test_a_client_message_right_after_the_close_starts_the_next_run(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {"rating_wait": 0}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)
    closed = await harness.close(dialog, a)

    await harness.client_writes(channel, "chat-1", "Wait, one more thing")  # run may be ending

    state = await harness.eventually(dialog, lambda s: s.dialog_id != closed.dialog_id)
    assert (state.status, state.chat_id, len(state.seen_message_ids)) == (
        "queued",
        closed.chat_id,
        1,
    )
    await harness.offered(dialog, [a])


async def test_a_supervisor_closes_an_unaccepted_dialog_and_a_client_message_requeues_it(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    closing = await dialog.execute_update(
        DialogWorkflow.close, OperatorAction(dialog_id=state.dialog_id, by_supervisor=True)
    )
    assert (closing.status, closing.operator_id, closing.offered_to) == ("closing", None, [])
    row = await harness.dialog_row(state.dialog_id, lambda r: r.status == "closing")
    assert (row.offered_to, row.waiting_since) == ([], None)  # out of the queue

    await harness.client_writes(channel, "chat-1", "Still there?")

    reopened = await harness.offered(dialog, [a])
    assert (reopened.dialog_id, reopened.status, reopened.close_reason) == (
        state.dialog_id,
        "queued",
        None,
    )
