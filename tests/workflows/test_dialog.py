"""A dialog's life apart from distribution: expiry, redelivery, closing."""

from datetime import timedelta

from core.models import Dialog
from tests.workflows.harness import Harness
from workflows.dialog import DialogWorkflow
from workflows.models import ClientMessage


async def test_unanswered_dialog_expires_30_days_after_the_last_client_message(harness: Harness):
    channel = await harness.line([])  # nobody to offer it to: it waits
    dialog = await harness.client_writes(channel, "chat-1")
    first = await harness.eventually(dialog, lambda s: "expiry" in s.deadlines)
    await harness.sleep(10 * 24 * 3600)
    await harness.client_writes(channel, "chat-1", "Anyone there?")
    later = await harness.eventually(dialog, lambda s: len(s.seen_message_ids) == 2)
    assert later.deadlines["expiry"] - first.deadlines["expiry"] >= timedelta(days=10)

    result = await harness.result(dialog)  # the test server skips the 30 days

    assert (result.status, result.close_reason) == ("closed", "expired")
    assert await harness.now() >= later.deadlines["expiry"]
    async with harness.sessions() as session:
        row = await session.get(Dialog, result.dialog_id)
        assert row is not None and (row.status, row.close_reason) == ("closed", "expired")


async def test_a_redelivered_message_is_counted_once(harness: Harness):
    channel = await harness.line([])
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.eventually(dialog, lambda s: len(s.seen_message_ids) == 1)
    again = ClientMessage(
        message_id=state.seen_message_ids[0], dialog_id=state.dialog_id, sent_at=await harness.now()
    )
    await dialog.signal(DialogWorkflow.client_message, again)
    await dialog.signal(DialogWorkflow.client_message, again)
    assert (await harness.state(dialog)).seen_message_ids == state.seen_message_ids
