"""Every open dialog has an ending deadline (design.md, invariant 8), whatever path led to
its status: a dialog answered, then transferred, intercepted, skipped or re-queued, that
nobody touches again, still closes."""

from datetime import timedelta

from tests.workflows.harness import Harness
from workflows import timers
from workflows.dialog import DialogWorkflow
from workflows.models import Transfer

HOUR = 3600


async def test_a_dialog_transferred_after_the_reply_closes_when_the_client_stays_silent(
    harness: Harness,
):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], {"inactivity": {"after": HOUR}, "rating_wait": 0}, handover_after=3600
    )
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)
    moved = await dialog.execute_update(
        DialogWorkflow.transfer,
        Transfer(dialog_id=1, operator_id=a, to_operator_id=b).model_copy(
            update={"dialog_id": (await harness.state(dialog)).dialog_id}
        ),
    )
    assert (moved.status, moved.operator_id) == ("accepted", b)
    assert timers.has_ending(moved.deadlines), moved.deadlines
    assert moved.operator_replied_at is not None
    assert moved.deadlines["inactivity"] == moved.operator_replied_at + timedelta(seconds=HOUR)

    await harness.sleep(HOUR + 1)

    ended = await harness.result(dialog)
    assert (ended.status, ended.close_reason) == ("closed", "inactivity")


async def test_a_dialog_skipped_after_the_reply_keeps_an_ending_deadline(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)

    skipped = await harness.skip(dialog, a)

    assert (skipped.status, skipped.operator_id, skipped.offered_to) == ("queued", None, [b])
    assert timers.has_ending(skipped.deadlines), skipped.deadlines
    assert skipped.last_message_at is not None
    assert skipped.deadlines["expiry"] == skipped.last_message_at + timers.EXPIRY


async def test_a_dialog_requeued_when_its_owner_is_fired_after_the_reply_keeps_one(
    harness: Harness,
):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], max_dialogs_per_operator=1, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)

    await harness.operator_changes(a, fired=True)

    requeued = await harness.eventually(dialog, lambda s: s.operator_id is None)
    assert requeued.status == "queued"
    assert timers.has_ending(requeued.deadlines), requeued.deadlines


async def test_a_dialog_transferred_to_another_line_after_the_reply_keeps_one(
    harness: Harness,
):
    a, b = await harness.operators(2)
    channel = await harness.line([a], handover_after=3600)
    other = await harness.line([b], handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)
    state = await harness.state(dialog)

    moved = await dialog.execute_update(
        DialogWorkflow.transfer,
        Transfer(dialog_id=state.dialog_id, operator_id=a, to_line_id=other.line_id),
    )

    assert (moved.status, moved.line_id, moved.offered_to) == ("queued", other.line_id, [b])
    assert timers.has_ending(moved.deadlines), moved.deadlines
