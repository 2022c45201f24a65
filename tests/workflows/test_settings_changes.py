"""Changed line settings reach dialogs that are already open: the next close, the next offer,
the running inactivity timer, and a line switched off."""

from datetime import datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from tests.workflows.harness import Harness

CLOSE = "Closed: thank you."
REQUEST = "Rate us: 1 or 0."
TEXTS = {
    "welcome": {"enabled": False},
    "close": {"text": CLOSE},
    "rating": {"text_texts": {"request": REQUEST}},
}


def on_time(actual: datetime | None, deadline: datetime) -> bool:
    """A timer fires within 1 s of its deadline (activities take real time meanwhile)."""
    return actual is not None and deadline <= actual < deadline + timedelta(seconds=1)


async def test_a_changed_rating_wait_applies_to_the_next_close(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {**TEXTS, "rating_wait": 600}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)

    await harness.change_settings(channel.line_id, {"rating_wait": 30})
    closing = await harness.close(dialog, a)

    assert (closing.status, closing.rating_wait) == ("closing", 30)
    assert closing.closing_since is not None
    assert closing.deadlines == {"rating_wait": closing.closing_since + timedelta(seconds=30)}
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST]
    result = await harness.result(dialog)
    assert (result.status, result.close_reason) == ("closed", "operator")
    row = await harness.dialog_row(closing.dialog_id)
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=30))


async def offered_then_handover_changed(
    harness: Harness,
) -> tuple[WorkflowHandle[Any, Any], list[int], datetime]:
    """A dialog offered to the first of two operators (strictly, 600 s), then the line's
    handover time changed to 120 s; returns once the dialog has read the new settings."""
    a, b = await harness.operators(2)
    # The no-answer deadline shows when the dialog has read the changed settings.
    settings = {**TEXTS, "no_answer": {"action": "text", "after": 3000}}
    channel = await harness.line([a, b], settings, distribution="strictly", handover_after=600)
    dialog = await harness.client_writes(channel, "chat-1")
    first = await harness.offered(dialog, [a])
    offered_at = (await harness.row(dialog)).offered_at
    assert offered_at is not None and first.queued_since is not None
    assert first.deadlines["handover"] == offered_at + timedelta(seconds=600)

    await harness.change_settings(
        channel.line_id, {"queue": {"handover_after": 120}, "no_answer": {"after": 3600}}
    )

    no_answer = first.queued_since + timedelta(seconds=3600)
    await harness.eventually(dialog, lambda s: s.deadlines.get("no_answer") == no_answer)
    return dialog, [a, b], offered_at


async def test_a_changed_handover_time_applies_to_the_next_offer(harness: Harness):
    dialog, (a, b), _ = await offered_then_handover_changed(harness)

    await harness.skip(dialog, a)

    second = await harness.offered(dialog, [b])
    offered_at = (await harness.row(dialog)).offered_at
    assert offered_at is not None
    assert second.deadlines["handover"] == offered_at + timedelta(seconds=120)
    await harness.sleep(119)
    assert (await harness.state(dialog)).offered_to == [b]
    await harness.sleep(1)
    await harness.offered(dialog, [a])  # strictly loops back to the start


async def test_a_changed_handover_time_leaves_the_current_offer_its_deadline(harness: Harness):
    dialog, (a, b), offered_at = await offered_then_handover_changed(harness)

    kept = await harness.state(dialog)

    assert kept.offered_to == [a]
    assert kept.deadlines["handover"] == offered_at + timedelta(seconds=600)
    await harness.sleep(599)
    assert (await harness.state(dialog)).offered_to == [a]
    await harness.sleep(1)
    await harness.offered(dialog, [b])


async def test_a_changed_inactivity_time_moves_the_running_timer(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], TEXTS, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    replied = await harness.reply(dialog, a)
    assert replied.operator_replied_at is not None
    assert replied.deadlines == {
        "inactivity": replied.operator_replied_at + timedelta(hours=4),
        "expiry": replied.operator_replied_at + timedelta(days=30),
    }

    await harness.change_settings(channel.line_id, {"inactivity": {"after": 3600}})

    moved = replied.operator_replied_at + timedelta(hours=1)
    await harness.eventually(dialog, lambda s: s.deadlines["inactivity"] == moved)
    await harness.sleep(3600)
    result = await harness.result(dialog)  # inactivity.action none: closed without a word
    assert (result.status, result.close_reason) == ("closed", "inactivity")
    assert on_time(result.closed_at, moved)
    assert await harness.texts_received(result.dialog_id) == []


async def test_a_deactivated_line_refuses_replies_but_still_queues_new_dialogs(
    harness: Harness,
):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], TEXTS, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)

    await harness.change_settings(channel.line_id, {"active": False})

    assert "inactive" in await harness.refused(harness.reply(dialog, a))
    state = await harness.eventually(dialog, lambda s: not s.line_active)
    assert (state.status, state.operator_id) == ("accepted", a)
    assert "inactive" in await harness.refused(harness.reply(dialog, a))
    other = await harness.client_writes(channel, "chat-2")
    offered = await harness.offered(other, [a])
    assert (offered.status, offered.line_active) == ("queued", False)
    assert "inactive" in await harness.refused(harness.reply(other, a))
