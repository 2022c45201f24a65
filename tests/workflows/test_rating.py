"""The client's rating: a 1 / 0 text or the web chat's buttons while the dialog closes, a
late rating after the close, the time limit, and a 1 that is no rating at all.

The widget texts differ from the text texts, so a dialog that answers with the wrong set
fails: the web chat gets the widget texts, every other channel the text texts."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError

from activities.auto_replies import RATING_TOO_LATE
from core.models import Channel, Dialog, Message
from tests.workflows.harness import Harness, on_time
from workflows.late_rating import LateRatingWorkflow
from workflows.models import DialogState, RatingOutcome

CLOSE = "Closed: thank you."
REQUEST = "Rate us: 1 or 0."
LIKE = "Glad you liked it!"
DISLIKE = "Sorry to hear that."
WIDGET_REQUEST = "How did we do? Press a button."
WIDGET_LIKE = "Thanks for the thumbs up!"
WIDGET_DISLIKE = "Thanks, we will do better."
TEXTS: dict[str, Any] = {
    "welcome": {"enabled": False},
    "close": {"text": CLOSE},
}


def rating(**fields: Any) -> dict[str, Any]:
    """The rating group with recognisable texts, different for the widget and for text."""
    texts = {"request": REQUEST, "like": LIKE, "dislike": DISLIKE}
    widget = {"request": WIDGET_REQUEST, "like": WIDGET_LIKE, "dislike": WIDGET_DISLIKE}
    return {"rating": {"text_texts": texts, "widget_texts": widget, **fields}}


async def closed_by_operator(
    harness: Harness, settings: dict[str, Any]
) -> tuple[Channel, WorkflowHandle[Any, Any], int, DialogState]:
    """A dialog in chat ``chat-1``, answered and then closed by the line's only operator."""
    channel, dialog, a, _ = await harness.answered({**TEXTS, **settings})
    return channel, dialog, a, await harness.close(dialog, a)


async def dialogs_of_chat(harness: Harness, chat_id: int) -> list[int]:
    async with harness.sessions() as session:
        return list(await session.scalars(select(Dialog.id).where(Dialog.chat_id == chat_id)))


async def client_messages(harness: Harness, dialog_id: int) -> int:
    async with harness.sessions() as session:
        count = select(func.count(Message.id)).where(
            Message.dialog_id == dialog_id, Message.author == "client"
        )
        return await session.scalar(count) or 0


async def late_rating(harness: Harness, dialog_id: int) -> RatingOutcome:
    """The outcome of the short run the relay starts for the dialog's last client message."""
    async with harness.sessions() as session:
        query = select(func.max(Message.id)).where(
            Message.dialog_id == dialog_id, Message.author == "client"
        )
        message_id = await session.scalar(query)
    handle = harness.env.client.get_workflow_handle_for(
        LateRatingWorkflow.run, f"rating-{dialog_id}-{message_id}"
    )
    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        try:
            await handle.describe()
            break
        except RPCError:
            assert asyncio.get_running_loop().time() < deadline, "no late rating run started"
            await asyncio.sleep(0.02)
    async with harness.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        outcome: RatingOutcome = await handle.result()
    return outcome


async def texts_become(harness: Harness, dialog_id: int, expected: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while (texts := await harness.texts_received(dialog_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"texts stay {texts}"
        await asyncio.sleep(0.02)


async def test_a_1_while_closing_is_a_like_and_the_dialog_closes_after_rating_wait(
    harness: Harness,
):
    channel, dialog, _, closing = await closed_by_operator(harness, rating())

    await harness.client_writes(channel, "chat-1", "1")

    rated = await harness.eventually(dialog, lambda s: s.rating == "like")
    assert (rated.status, rated.close_reason) == ("closing", "operator")
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, LIKE]
    row = await harness.dialog_row(closing.dialog_id, lambda r: r.client_rating is not None)
    assert (row.client_rating, row.status) == ("like", "closing")
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.rating) == ("closed", "operator", "like")
    assert closing.closing_since is not None
    row = await harness.dialog_row(closing.dialog_id)
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=600))


async def test_a_0_while_closing_is_a_dislike(harness: Harness):
    channel, dialog, _, closing = await closed_by_operator(harness, rating())

    await harness.client_writes(channel, "chat-1", " 0 ")

    rated = await harness.eventually(dialog, lambda s: s.rating is not None)
    assert (rated.rating, rated.status) == ("dislike", "closing")
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, DISLIKE]
    row = await harness.dialog_row(closing.dialog_id, lambda r: r.client_rating is not None)
    assert row.client_rating == "dislike"
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.rating) == ("closed", "operator", "dislike")
    row = await harness.dialog_row(closing.dialog_id)
    assert (row.status, row.close_reason, row.client_rating) == ("closed", "operator", "dislike")
    assert closing.closing_since is not None
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=600))
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, DISLIKE]


async def closed_in_the_web_chat(
    harness: Harness, settings: dict[str, Any]
) -> tuple[WorkflowHandle[Any, Any], DialogState]:
    """A web-chat dialog (the line's ``webchat`` channel, as a channel connector would file
    it), answered and then closed by the line's only operator."""
    (a,) = await harness.operators(1)
    api = await harness.line([a], {**TEXTS, **settings}, handover_after=3600)
    webchat = await harness.channel(api.line_id, "webchat")
    dialog = await harness.client_writes(webchat, "visitor-1")
    await harness.offered(dialog, [a])
    await harness.reply(dialog, a)
    closing = await harness.close(dialog, a)
    assert (closing.channel_type, closing.status, closing.rating_requested) == (
        "webchat",
        "closing",
        True,
    )
    return dialog, closing


@pytest.mark.parametrize(("value", "thanks"), [("like", WIDGET_LIKE), ("dislike", WIDGET_DISLIKE)])
async def test_the_web_chat_is_asked_and_thanked_with_the_widget_texts(
    harness: Harness, value: str, thanks: str
):
    dialog, closing = await closed_in_the_web_chat(harness, rating())
    asked = [("client", "Hello"), ("system", CLOSE), ("system", WIDGET_REQUEST)]
    assert await harness.messages(closing.dialog_id) == asked

    rated = await harness.rate(dialog, value)  # what POST /v1/dialogs/{id}/rating runs

    assert (rated.status, rated.close_reason, rated.rating) == ("closing", "operator", value)
    assert await harness.messages(closing.dialog_id) == [*asked, ("system", thanks)]
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.rating) == ("closed", "operator", value)
    row = await harness.dialog_row(closing.dialog_id)
    assert (row.channel_type, row.status, row.close_reason, row.client_rating) == (
        "webchat",
        "closed",
        "operator",
        value,
    )
    assert closing.closing_since is not None
    assert on_time(row.closed_at, closing.closing_since + timedelta(seconds=600))
    assert await harness.messages(closing.dialog_id) == [*asked, ("system", thanks)]


async def test_the_widget_button_rates_once(harness: Harness):
    _, dialog, _, closing = await closed_by_operator(harness, rating())

    rated = await harness.rate(dialog, "like")

    assert (rated.status, rated.rating) == ("closing", "like")
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, LIKE]
    refused = await harness.refused(harness.rate(dialog, "dislike"))
    assert "does not wait for a rating" in refused
    row = await harness.dialog_row(closing.dialog_id, lambda r: r.client_rating is not None)
    assert row.client_rating == "like"
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, LIKE]


async def test_close_on_rating_closes_the_dialog_at_the_rating(harness: Harness):
    channel, dialog, _, closing = await closed_by_operator(harness, rating(close_on_rating=True))
    await harness.sleep(60)

    await harness.client_writes(channel, "chat-1", "1")

    closed = await harness.eventually(dialog, lambda s: s.status == "closed")
    assert (closed.close_reason, closed.rating) == ("rating", "like")
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.rating) == ("closed", "rating", "like")
    row = await harness.dialog_row(closing.dialog_id)
    assert (row.status, row.close_reason, row.client_rating) == ("closed", "rating", "like")
    assert closing.closing_since is not None and row.closed_at is not None
    assert row.closed_at < closing.closing_since + timedelta(seconds=600)
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, LIKE]


async def test_a_rating_after_the_final_close_is_recorded_on_that_dialog(harness: Harness):
    channel, dialog, _, closed = await closed_by_operator(harness, {**rating(), "rating_wait": 0})
    assert closed.status == "closed"
    first_run = (await dialog.describe()).run_id
    await harness.sleep(3600)

    await harness.client_writes(channel, "chat-1", "1")

    outcome = await late_rating(harness, closed.dialog_id)
    assert outcome.recorded
    row = await harness.dialog_row(closed.dialog_id)
    assert (row.client_rating, row.status, row.close_reason) == ("like", "closed", "operator")
    assert await harness.messages(closed.dialog_id) == [
        ("client", "Hello"),
        ("system", CLOSE),
        ("system", REQUEST),
        ("client", "1"),
        ("system", LIKE),
    ]
    assert await dialogs_of_chat(harness, closed.chat_id) == [closed.dialog_id]
    assert (await dialog.describe()).run_id == first_run  # the chat's workflow did not restart


async def test_a_rating_after_the_time_limit_is_refused_while_closing(harness: Harness):
    channel, dialog, _, closing = await closed_by_operator(harness, rating(time_limit=60))
    await harness.sleep(61)

    await harness.client_writes(channel, "chat-1", "1")

    await texts_become(harness, closing.dialog_id, [CLOSE, REQUEST, RATING_TOO_LATE])
    state = await harness.state(dialog)
    assert (state.status, state.rating, state.operator_id) == ("closing", None, closing.operator_id)
    result = await harness.result(dialog)
    assert (result.status, result.close_reason, result.rating) == ("closed", "operator", None)
    assert await harness.texts_received(closing.dialog_id) == [CLOSE, REQUEST, RATING_TOO_LATE]
    row = await harness.dialog_row(closing.dialog_id)
    assert (row.client_rating, row.close_reason) == (None, "operator")
    assert await dialogs_of_chat(harness, closing.chat_id) == [closing.dialog_id]


async def test_a_rating_after_the_time_limit_is_refused_after_the_close(harness: Harness):
    channel, _, _, closed = await closed_by_operator(
        harness, {**rating(time_limit=60), "rating_wait": 0}
    )
    await harness.sleep(61)

    await harness.client_writes(channel, "chat-1", "1")

    outcome = await late_rating(harness, closed.dialog_id)
    assert not outcome.recorded
    assert await harness.texts_received(closed.dialog_id) == [CLOSE, REQUEST, RATING_TOO_LATE]
    row = await harness.dialog_row(closed.dialog_id)
    assert (row.client_rating, row.status) == (None, "closed")
    assert await dialogs_of_chat(harness, closed.chat_id) == [closed.dialog_id]


async def test_a_1_without_a_rating_request_reopens_the_closing_dialog(harness: Harness):
    channel, dialog, a, closing = await closed_by_operator(harness, rating(enabled=False))
    assert (closing.status, closing.rating_requested) == ("closing", False)

    await harness.client_writes(channel, "chat-1", "1")

    state = await harness.eventually(dialog, lambda s: s.status != "closing")
    assert (state.status, state.operator_id, state.rating) == ("client_waiting", a, None)
    assert await harness.texts_received(closing.dialog_id) == [CLOSE]


async def test_a_1_after_a_close_without_a_rating_request_starts_a_new_dialog(harness: Harness):
    channel, dialog, _, closed = await closed_by_operator(
        harness, {**rating(enabled=False), "rating_wait": 0}
    )
    assert closed.status == "closed"

    await harness.client_writes(channel, "chat-1", "1")

    state = await harness.eventually(dialog, lambda s: s.dialog_id != closed.dialog_id)
    assert (state.status, state.client_messages, state.rating) == ("queued", 1, None)
    assert await dialogs_of_chat(harness, closed.chat_id) == [closed.dialog_id, state.dialog_id]
    assert await client_messages(harness, state.dialog_id) == 1
    row = await harness.dialog_row(closed.dialog_id)
    assert row.client_rating is None


async def test_a_new_client_whose_first_message_is_1_gets_a_dialog(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], TEXTS, handover_after=3600)

    dialog = await harness.client_writes(channel, "chat-1", "1")

    state = await harness.offered(dialog, [a])
    assert (state.status, state.client_messages) == ("queued", 1)
