"""What the client gets on its own: the welcome text and the no-answer text."""

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from temporalio.client import WorkflowHandle

from core.events.models import Event
from core.line_settings import Close, TextRatingTexts
from tests.workflows.harness import Harness
from tests.workflows.test_bots import registered_bot
from workflows.dialog import DialogWorkflow
from workflows.models import BotAction

WELCOME = "Hi! This is Acme support; someone will be with you in a moment."
NO_ANSWER = "Sorry for the wait: everyone is busy, please stay with us."
NO_ANSWER_AFTER_2_MIN: dict[str, Any] = {
    "welcome": {"text": WELCOME},
    "no_answer": {"after": 120, "action": "text", "text": NO_ANSWER},
}
CLOSING_TEXTS = [Close().text, TextRatingTexts().request]  # the defaults


async def received(harness: Harness, dialog_id: int, expected: list[str]) -> None:
    """The client has got exactly ``expected`` (waiting up to 10 s for texts on their way)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while (texts := await harness.texts_received(dialog_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, texts
        await asyncio.sleep(0.02)


async def test_the_first_message_of_a_new_chat_is_welcomed_once(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {"welcome": {"text": WELCOME}}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME])

    await harness.client_writes(channel, "chat-1", "Are you there?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    accepted = await harness.accept(dialog, a)  # after the dialog has dealt with the message

    assert (accepted.status, accepted.operator_id) == ("accepted", a)
    assert await harness.texts_received(state.dialog_id) == [WELCOME]
    await harness.closed_for_good(dialog, a, state.dialog_id)
    assert await harness.texts_received(state.dialog_id) == [WELCOME, *CLOSING_TEXTS]


async def later_session(
    harness: Harness, welcome: dict[str, Any]
) -> tuple[WorkflowHandle[Any, Any], int, int, int]:
    """Chat ``chat-1``: a first dialog, closed by its operator, then the client writes again.
    Returns the chat's handle, the operator and both dialogs' ids once the second has dealt
    with the client's message (and waits for the operator, in the queue)."""
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {"rating_wait": 0, "welcome": welcome}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [a])
    await harness.accept(dialog, a)
    closed = await harness.close(dialog, a)
    assert (closed.status, closed.close_reason) == ("closed", "operator")
    result = await harness.result(dialog)
    assert (result.dialog_id, result.status, result.close_reason) == (
        closed.dialog_id,
        "closed",
        "operator",
    )

    await harness.client_writes(channel, "chat-1", "Me again")

    later = await harness.eventually(
        dialog, lambda s: s.dialog_id != closed.dialog_id and s.greeted
    )
    later = await harness.offered(dialog, [a])
    assert (later.status, later.client_messages, later.close_reason) == ("queued", 1, None)
    return dialog, a, closed.dialog_id, later.dialog_id


async def test_a_later_session_of_the_chat_gets_no_welcome_by_default(harness: Harness):
    dialog, a, first, later = await later_session(harness, {"text": WELCOME})

    assert await harness.texts_received(first) == [WELCOME, *CLOSING_TEXTS]
    assert await harness.texts_received(later) == []
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, later)
    assert await harness.texts_received(later) == CLOSING_TEXTS
    assert await harness.texts_received(first) == [WELCOME, *CLOSING_TEXTS]


async def test_with_each_session_every_session_is_welcomed(harness: Harness):
    dialog, a, first, later = await later_session(harness, {"text": WELCOME, "each_session": True})

    assert await harness.texts_received(first) == [WELCOME, *CLOSING_TEXTS]
    await received(harness, later, [WELCOME])
    await harness.accept(dialog, a)
    await harness.closed_for_good(dialog, a, later)
    assert await harness.texts_received(later) == [WELCOME, *CLOSING_TEXTS]
    assert await harness.texts_received(first) == [WELCOME, *CLOSING_TEXTS]


async def first_message_handled(harness: Harness, settings: dict[str, Any]) -> int:
    """A client writes to a new line with ``settings``; the dialog's id once it has dealt with
    the message (automatic replies included). Without availability checking: an empty queue
    would be "nobody available" and get the off-hours text."""
    channel = await harness.line([], settings, check_availability=False)
    dialog = await harness.client_writes(channel, "chat-1")
    return (await harness.eventually(dialog, lambda s: s.greeted)).dialog_id


async def test_no_welcome_when_it_is_switched_off(harness: Harness):
    dialog_id = await first_message_handled(harness, {"welcome": {"enabled": False}})
    assert await harness.texts_received(dialog_id) == []


async def test_no_welcome_when_a_bot_takes_the_dialog(harness: Harness):
    bot_id = await registered_bot(harness)
    settings = {"welcome": {"text": WELCOME}, "bot": {"enabled": True, "bot_id": bot_id}}
    dialog_id = await first_message_handled(harness, settings)
    assert await harness.texts_received(dialog_id) == []
    assert (await harness.dialog_row(dialog_id)).status == "bot"


async def test_the_welcome_goes_when_the_bot_leaves_a_later_session_to_the_queue(
    harness: Harness,
):
    bot_id = await registered_bot(harness)
    bot = {"enabled": True, "bot_id": bot_id, "join": "first"}
    settings = {"welcome": {"text": WELCOME, "each_session": True}, "bot": bot}
    channel = await harness.line([], settings, check_availability=False)
    first = await harness.client_writes(channel, "chat-1")
    state = await harness.eventually(first, lambda s: s.status == "bot" and s.greeted)
    await first.execute_update(
        DialogWorkflow.bot_close, BotAction(dialog_id=state.dialog_id, bot_id=bot_id)
    )
    second = await harness.client_writes(channel, "chat-1", "Me again")
    later = await harness.eventually(
        second, lambda s: s.dialog_id == state.dialog_id + 1 and s.greeted
    )
    assert later.status == "queued"
    assert await harness.texts_received(state.dialog_id) == []
    assert await harness.texts_received(later.dialog_id) == [WELCOME]


async def test_the_no_answer_text_goes_once_when_nobody_accepts_in_time(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], NO_ANSWER_AFTER_2_MIN, handover_after=60)
    written_at = await harness.now()
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME])
    assert state.queued_since is not None
    assert written_at <= state.queued_since < written_at + timedelta(seconds=5)
    due = state.deadlines["no_answer"]
    assert due == state.queued_since + timedelta(seconds=120)

    # A few seconds short of it (activities take real time): a handover, but no text yet.
    await harness.sleep((due - await harness.now()).total_seconds() - 5)
    await harness.offered(dialog, [b])
    assert await harness.texts_received(state.dialog_id) == [WELCOME]
    await harness.sleep(6)
    await received(harness, state.dialog_id, [WELCOME, NO_ANSWER])
    assert await harness.now() >= due

    await harness.sleep(600)  # ten more handovers, still unaccepted
    now = await harness.now()
    later = await harness.eventually(dialog, lambda s: s.deadlines["handover"] > now)
    assert (later.status, later.operator_id, "no_answer" in later.deadlines) == (
        "queued",
        None,
        False,
    )
    assert await harness.texts_received(state.dialog_id) == [WELCOME, NO_ANSWER]


async def test_a_dialog_accepted_in_time_gets_no_no_answer_text(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], NO_ANSWER_AFTER_2_MIN, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME])
    await harness.sleep(60)

    accepted = await harness.accept(dialog, a)

    assert "no_answer" not in accepted.deadlines
    await harness.sleep(600)
    assert await harness.texts_received(state.dialog_id) == [WELCOME]


async def unanswered_events(harness: Harness, dialog_id: int) -> list[list[int]]:
    """The operators told of each ``dialog.unanswered`` event of the dialog."""
    async with harness.sessions() as session:
        query = select(Event).where(Event.dialog_id == dialog_id, Event.type == "dialog.unanswered")
        return [event.operator_ids for event in await session.scalars(query.order_by(Event.id))]


async def test_without_a_no_answer_text_the_dialog_is_still_marked_unanswered(harness: Harness):
    """``no_answer.after`` is the time until the request is marked unanswered; the action
    (a text or nothing) only comes with the mark."""
    channel = await harness.line([], {"welcome": {"text": WELCOME}}, check_availability=False)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.waiting(dialog)
    await received(harness, state.dialog_id, [WELCOME])
    assert state.queued_since is not None
    assert state.deadlines["no_answer"] == state.queued_since + timedelta(seconds=60)
    assert not (await harness.dialog_row(state.dialog_id)).unanswered

    await harness.sleep(3600)

    await harness.dialog_row(state.dialog_id, lambda row: row.unanswered)
    assert await harness.texts_received(state.dialog_id) == [WELCOME]
    assert await unanswered_events(harness, state.dialog_id) == [[]]  # told once
    assert "no_answer" not in (await harness.state(dialog)).deadlines


async def test_the_mark_comes_with_the_text_and_an_accept_clears_it(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], NO_ANSWER_AFTER_2_MIN, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await harness.sleep(119)
    assert not (await harness.dialog_row(state.dialog_id)).unanswered

    await harness.sleep(2)

    await received(harness, state.dialog_id, [WELCOME, NO_ANSWER])
    await harness.dialog_row(state.dialog_id, lambda row: row.unanswered)
    assert await unanswered_events(harness, state.dialog_id) == [[a]]  # the one offered it
    await harness.accept(dialog, a)
    assert not (await harness.dialog_row(state.dialog_id)).unanswered


async def test_a_reply_clears_the_unanswered_mark(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], {}, handover_after=3600)
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await harness.sleep(61)
    await harness.dialog_row(state.dialog_id, lambda row: row.unanswered)

    await harness.reply(dialog, a)  # answers without accepting first

    assert not (await harness.dialog_row(state.dialog_id)).unanswered


async def test_a_skipped_offer_does_not_put_off_the_no_answer_text(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], NO_ANSWER_AFTER_2_MIN, distribution="strictly", handover_after=3600
    )
    dialog = await harness.client_writes(channel, "chat-1")
    state = await harness.offered(dialog, [a])
    await received(harness, state.dialog_id, [WELCOME])
    due = state.deadlines["no_answer"]
    await harness.sleep(100)

    skipped = await harness.skip(dialog, a)  # still unaccepted, as it has been for 100 s

    assert (skipped.offered_to, skipped.deadlines.get("no_answer")) == ([b], due)
    await harness.sleep((due - await harness.now()).total_seconds() + 1)
    await received(harness, state.dialog_id, [WELCOME, NO_ANSWER])
