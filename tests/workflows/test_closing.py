"""Closing a dialog: the close text and rating request, the rating wait, a client who writes
again while it closes, spam, inactivity and pinned dialogs."""

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from core.models import Channel
from tests.workflows.harness import Harness, on_time
from workflows.dialog import DialogWorkflow
from workflows.models import DialogState, OperatorAction

CLOSE = "Closed: thank you."
REQUEST = "Rate us: 1 or 0."
IDLE = "Are you still there?"
# Recognisable texts; no welcome, so the client gets only what closing sends.
TEXTS: dict[str, Any] = {
    "welcome": {"enabled": False},
    "close": {"text": CLOSE},
    "rating": {"text_texts": {"request": REQUEST}},
}
INACTIVITY = {"inactivity": {"after": 3600, "action": "text", "text": IDLE}}


async def answered_dialog(
    harness: Harness, settings: dict[str, Any]
) -> tuple[Channel, WorkflowHandle[Any, Any], int, DialogState]:
    return await harness.answered({**TEXTS, **settings})


async def act(handle: WorkflowHandle[Any, Any], update: Any, operator_id: int) -> DialogState:
    """An operator action the harness has no helper for (spam, pin, unpin)."""
    dialog_id = (await handle.query(DialogWorkflow.state)).dialog_id
    state: DialogState = await handle.execute_update(
        update, OperatorAction(dialog_id=dialog_id, operator_id=operator_id)
    )
    return state


async def test_operator_close_sends_close_text_and_rating_request_then_closes_after_rating_wait(
    harness: Harness,
):
    _, dialog, a, _ = await answered_dialog(harness, {})

    closing = await harness.close(dialog, a)

    assert (closing.status, closing.close_reason, closing.rating_wait) == (
        "closing",
        "operator",
        600,
    )
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST]
    await harness.dialog_row(closing.dialog_id, lambda r: r.status == "closing")
    await harness.sleep(599)
    assert (await harness.state(dialog)).status == "closing"
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.operator_id) == ("closed", "operator", a)
    row = await harness.dialog_row(closing.dialog_id)
    assert (row.status, row.close_reason) == ("closed", "operator")
    assert closing.closing_since is not None
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=600))
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST]


async def test_rating_wait_zero_closes_at_once_after_the_texts(harness: Harness):
    _, dialog, a, _ = await answered_dialog(harness, {"rating_wait": 0})

    closed = await harness.close(dialog, a)

    assert (closed.status, closed.close_reason) == ("closed", "operator")
    assert await harness.texts_received(closed.dialog_id) == [CLOSE, REQUEST]
    row = await harness.dialog_row(closed.dialog_id)
    assert (row.status, row.close_reason) == ("closed", "operator")
    assert (await harness.result(dialog)).status == "closed"


async def test_without_close_text_and_rating_the_dialog_closes_at_once_in_silence(
    harness: Harness,
):
    settings = {"close": {"action": "none"}, "rating": {"enabled": False}}
    _, dialog, a, _ = await answered_dialog(harness, settings)

    closed = await harness.close(dialog, a)

    assert (closed.status, closed.close_reason) == ("closed", "operator")
    assert await harness.texts_received(closed.dialog_id) == []
    row = await harness.dialog_row(closed.dialog_id)
    assert (row.status, row.close_reason, row.rating_requested_at) == ("closed", "operator", None)


async def test_a_client_writing_while_closing_reopens_the_dialog_to_its_operator(
    harness: Harness,
):
    channel, dialog, a, _ = await answered_dialog(harness, {})
    closing = await harness.close(dialog, a)

    await harness.client_writes(channel, "chat-1", "Wait, one more question")

    state = await harness.eventually(dialog, lambda s: s.status != "closing")
    assert (state.dialog_id, state.status, state.operator_id) == (
        closing.dialog_id,
        "client_waiting",
        a,
    )
    assert (state.close_reason, state.closing_since, state.rating_wait) == (None, None, None)
    assert "rating_wait" not in state.deadlines
    row = await harness.dialog_row(state.dialog_id, lambda r: r.status == "client_waiting")
    assert (row.operator_id, row.close_reason) == (a, None)
    assert (await harness.reply(dialog, a)).status == "operator_replied"
    await harness.sleep(60)
    again = await harness.close(dialog, a)
    assert (again.status, again.close_reason) == ("closing", "operator")
    assert await harness.texts_received(state.dialog_id) == [CLOSE, REQUEST, CLOSE, REQUEST]
    result = await harness.result(dialog)
    assert (result.dialog_id, result.status, result.close_reason) == (
        state.dialog_id,
        "closed",
        "operator",
    )


async def test_spam_closes_without_any_text(harness: Harness):
    _, dialog, a, _ = await answered_dialog(harness, {})

    spam = await act(dialog, DialogWorkflow.spam, a)

    assert (spam.status, spam.close_reason) == ("spam", None)
    result = await harness.result(dialog)
    assert (result.status, result.close_reason) == ("spam", None)
    row = await harness.dialog_row(spam.dialog_id)
    assert (row.status, row.rating_requested_at) == ("spam", None)
    assert await harness.texts_received(spam.dialog_id) == []


async def test_a_silent_client_gets_the_inactivity_text_and_the_dialog_closes(harness: Harness):
    _, dialog, _, replied = await answered_dialog(harness, INACTIVITY)
    assert replied.operator_replied_at is not None
    assert replied.deadlines == {
        "inactivity": replied.operator_replied_at + timedelta(hours=1),
        "expiry": replied.operator_replied_at + timedelta(days=30),  # behind it, always
    }

    await harness.sleep(3599)
    assert (await harness.state(dialog)).status == "operator_replied"
    assert await harness.texts_received(replied.dialog_id) == []
    await harness.sleep(1)

    closing = await harness.eventually(dialog, lambda s: s.status == "closing")
    assert closing.close_reason == "inactivity"
    assert on_time(closing.closing_since, replied.operator_replied_at + timedelta(hours=1))
    assert await harness.texts_received(replied.dialog_id) == [IDLE, CLOSE, REQUEST]
    result = await harness.result(dialog)
    assert (result.status, result.close_reason) == ("closed", "inactivity")
    row = await harness.dialog_row(result.dialog_id)
    assert (row.status, row.close_reason) == ("closed", "inactivity")
    assert closing.closing_since is not None
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=600))


async def test_a_client_message_stops_the_inactivity_close_until_the_next_reply(
    harness: Harness,
):
    channel, dialog, a, replied = await answered_dialog(harness, INACTIVITY)
    await harness.sleep(1800)

    await harness.client_writes(channel, "chat-1", "Let me check")

    waiting = await harness.eventually(dialog, lambda s: s.status == "client_followup")
    assert "inactivity" not in waiting.deadlines
    await harness.sleep(7200)
    assert (await harness.state(dialog)).status == "client_followup"
    assert await harness.texts_received(replied.dialog_id) == []
    again = await harness.reply(dialog, a)
    assert again.operator_replied_at is not None and replied.operator_replied_at is not None
    assert again.operator_replied_at >= replied.operator_replied_at + timedelta(seconds=9000)
    assert again.deadlines["inactivity"] == again.operator_replied_at + timedelta(hours=1)
    await harness.sleep(3600)
    closing = await harness.eventually(dialog, lambda s: s.status == "closing")
    assert closing.close_reason == "inactivity"
    assert on_time(closing.closing_since, again.deadlines["inactivity"])
    assert await harness.texts_received(replied.dialog_id) == [IDLE, CLOSE, REQUEST]


async def test_inactivity_without_its_text_closes_silently_at_once(harness: Harness):
    """``inactivity.action: none`` is "close the dialog without any actions": no close text,
    no rating request, no rating wait."""
    _, dialog, _, replied = await answered_dialog(
        harness, {"inactivity": {"after": 3600, "action": "none", "text": IDLE}}
    )
    assert replied.operator_replied_at is not None

    await harness.sleep(3600)

    result = await harness.result(dialog)
    assert (result.status, result.close_reason) == ("closed", "inactivity")
    assert await harness.texts_received(replied.dialog_id) == []
    row = await harness.dialog_row(result.dialog_id)
    assert (row.status, row.close_reason, row.rating_requested_at) == ("closed", "inactivity", None)
    assert on_time(row.closed_at, replied.operator_replied_at + timedelta(hours=1))


async def test_an_operator_close_still_sends_its_texts_when_inactivity_is_silent(
    harness: Harness,
):
    _, dialog, a, _ = await answered_dialog(
        harness, {"inactivity": {"after": 3600, "action": "none", "text": IDLE}}
    )

    closing = await harness.close(dialog, a)

    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST]
    assert (closing.status, closing.rating_wait) == ("closing", 600)


async def test_a_pinned_dialog_is_not_closed_for_inactivity_but_7_days_after_its_last_message(
    harness: Harness,
):
    channel, dialog, a, replied = await answered_dialog(harness, INACTIVITY)

    pinned = await act(dialog, DialogWorkflow.pin, a)

    assert pinned.pinned and replied.operator_replied_at is not None
    week = timedelta(days=7)
    assert pinned.deadlines == {
        "pinned": replied.operator_replied_at + week,
        "expiry": replied.operator_replied_at + timedelta(days=30),
    }
    await harness.dialog_row(pinned.dialog_id, lambda r: r.pinned)
    await harness.sleep(2 * 3600)
    assert (await harness.state(dialog)).status == "operator_replied"
    assert await harness.texts_received(pinned.dialog_id) == []
    await harness.client_writes(channel, "chat-1", "Thanks, I will come back to it")
    later = await harness.eventually(dialog, lambda s: s.client_messages == 2)
    assert later.last_message_at is not None
    assert later.deadlines["pinned"] == later.last_message_at + week
    await harness.sleep(week.total_seconds() - 60)
    assert (await harness.state(dialog)).status == "client_followup"
    await harness.sleep(60)
    closing = await harness.eventually(dialog, lambda s: s.status == "closing")
    assert closing.close_reason == "inactivity"
    assert on_time(closing.closing_since, later.last_message_at + week)
    assert await harness.texts_received(pinned.dialog_id) == [IDLE, CLOSE, REQUEST]
    result = await harness.result(dialog)
    assert (result.status, result.close_reason) == ("closed", "inactivity")


async def test_unpinning_brings_back_the_inactivity_close(harness: Harness):
    _, dialog, a, replied = await answered_dialog(harness, INACTIVITY)
    await act(dialog, DialogWorkflow.pin, a)

    unpinned = await act(dialog, DialogWorkflow.unpin, a)

    assert not unpinned.pinned and replied.operator_replied_at is not None
    assert unpinned.deadlines == {
        "inactivity": replied.operator_replied_at + timedelta(hours=1),
        "expiry": replied.operator_replied_at + timedelta(days=30),
    }
    await harness.dialog_row(unpinned.dialog_id, lambda r: not r.pinned)
    await harness.sleep(3600)
    closing = await harness.eventually(dialog, lambda s: s.status == "closing")
    assert closing.close_reason == "inactivity"
    assert await harness.texts_received(unpinned.dialog_id) == [IDLE, CLOSE, REQUEST]
