"""``max_dialogs_per_operator``: which dialogs count toward the limit (``not_counted``), the
order in which waiting dialogs are served when a place frees up, and `all` ignoring it."""

from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from core.models import Channel
from tests.workflows.harness import Harness

Handle = WorkflowHandle[Any, Any]


async def taken(harness: Harness, channel: Channel, chat: str, operator: int) -> Handle:
    """A new dialog in ``chat``, offered to and accepted by ``operator``."""
    dialog = await harness.client_writes(channel, chat)
    await harness.offered(dialog, [operator])
    await harness.accept(dialog, operator)
    return dialog


async def test_answered_a_reply_frees_the_place_even_when_the_client_writes_back(
    harness: Harness,
):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], max_dialogs_per_operator=1, not_counted="answered", handover_after=3600
    )
    first = await taken(harness, channel, "chat-1", a)
    await taken(harness, channel, "chat-2", b)  # b stays at the limit: never replies
    third = await harness.client_writes(channel, "chat-3")
    await harness.waiting(third)

    await harness.reply(first, a)
    await harness.offered(third, [a])

    await harness.accept(third, a)
    await harness.reply(third, a)
    await harness.client_writes(channel, "chat-1", "One more question")
    await harness.row_shows(first, "client_followup")  # answered once: still not counted
    fourth = await harness.client_writes(channel, "chat-4")
    await harness.offered(fourth, [a])


async def test_awaiting_client_counts_again_once_the_client_writes(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], max_dialogs_per_operator=1, not_counted="awaiting_client", handover_after=3600
    )
    first = await taken(harness, channel, "chat-1", a)
    await harness.reply(first, a)  # a waits for the client: the place is free
    await harness.row_shows(first, "operator_replied")
    second = await taken(harness, channel, "chat-2", b)

    await harness.client_writes(channel, "chat-1", "Thanks, but")
    await harness.row_shows(first, "client_followup")  # a's turn again: it counts
    third = await harness.client_writes(channel, "chat-3")
    await harness.waiting(third)

    await harness.reply(second, b)
    await harness.offered(third, [b])


async def test_awaiting_client_a_reply_frees_the_place_for_a_waiting_dialog(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], max_dialogs_per_operator=1, not_counted="awaiting_client", handover_after=3600
    )
    first = await taken(harness, channel, "chat-1", a)
    await taken(harness, channel, "chat-2", b)
    third = await harness.client_writes(channel, "chat-3")
    await harness.waiting(third)

    await harness.reply(first, a)

    await harness.offered(third, [a])


async def test_closed_only_closing_frees_the_place(harness: Harness):
    a, b, c = await harness.operators(3)
    channel = await harness.line(
        [a, b, c], max_dialogs_per_operator=1, not_counted="closed", handover_after=3600
    )
    dialogs = {}
    for chat, operator in (("chat-1", a), ("chat-2", b), ("chat-3", c)):
        dialogs[operator] = await taken(harness, channel, chat, operator)
        await harness.reply(dialogs[operator], operator)
    waiting = await harness.client_writes(channel, "chat-4")
    await harness.waiting(waiting)  # everyone replied, everyone is still at the limit

    await harness.client_writes(channel, "chat-1", "Bye")
    await harness.row_shows(dialogs[a], "client_followup")
    await harness.reply(dialogs[a], a)
    await harness.waiting(waiting)

    closing = await harness.close(dialogs[b], b)
    assert closing.status == "closing"  # waiting for a rating does not count
    await harness.offered(waiting, [b])


async def test_waiting_dialogs_are_served_first_come_first_served(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line([a], max_dialogs_per_operator=1, handover_after=3600)
    first = await taken(harness, channel, "chat-a", a)
    second = await harness.client_writes(channel, "chat-b")
    await harness.waiting(second)
    third = await harness.client_writes(channel, "chat-c")
    await harness.waiting(third)

    await harness.close(first, a)
    await harness.offered(second, [a])
    await harness.waiting(third)

    await harness.accept(second, a)
    await harness.close(second, a)
    await harness.offered(third, [a])


async def test_the_limit_does_not_apply_to_distribution_all(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], distribution="all", max_dialogs_per_operator=1)
    for chat in ("chat-1", "chat-2"):
        dialog = await harness.client_writes(channel, chat)
        await harness.offered(dialog, [a, b])
        await harness.accept(dialog, a)
    third = await harness.client_writes(channel, "chat-3")
    await harness.offered(third, [a, b])  # a holds two already, the limit is one


async def test_a_closing_dialog_reopened_by_its_client_counts_again(harness: Harness):
    (a,) = await harness.operators(1)
    channel = await harness.line(
        [a], max_dialogs_per_operator=1, not_counted="closed", handover_after=3600
    )
    first = await taken(harness, channel, "chat-1", a)
    closing = await harness.close(first, a)
    assert closing.status == "closing"
    second = await taken(harness, channel, "chat-2", a)  # the closing one freed the place
    await harness.close(second, a)

    await harness.client_writes(channel, "chat-1", "One more question")

    reopened = await harness.row_shows(first, "client_waiting")
    assert (reopened.operator_id, reopened.holder_id) == (a, a)  # back in a's load
    waiting = await harness.client_writes(channel, "chat-3")
    await harness.waiting(waiting)  # a is at the limit again


async def test_firing_an_operator_leaves_their_closing_dialogs_closing(harness: Harness):
    a, b = await harness.operators(2)
    channel = await harness.line([a, b], handover_after=3600)
    dialog = await taken(harness, channel, "chat-1", a)
    closing = await harness.close(dialog, a)

    await harness.operator_changes(a, fired=True)

    row = await harness.dialog_row(closing.dialog_id)
    assert (row.status, row.offered_to, row.waiting_since) == ("closing", [], None)
    state = await harness.state(dialog)
    assert (state.status, state.offered_to) == ("closing", [])


@pytest.mark.parametrize("not_counted", ["answered", "awaiting_client"])
async def test_a_dialog_answered_by_its_old_owner_counts_for_the_new_one(
    harness: Harness, not_counted: str
):
    """Answered means answered by the operator who holds the dialog now: A's reply does not
    leave B, who took the dialog over, with a free place."""
    a, b = await harness.operators(2)
    channel = await harness.line(
        [a, b], max_dialogs_per_operator=1, not_counted=not_counted, handover_after=3600
    )
    first = await taken(harness, channel, "chat-1", a)
    await harness.reply(first, a)
    await harness.row_shows(first, "operator_replied")

    await harness.set_members(channel.line_id, [b])  # a leaves the queue: first goes to b
    await harness.offered(first, [b])
    await harness.accept(first, b)
    second = await harness.client_writes(channel, "chat-2")

    await harness.waiting(second)  # b holds one unanswered dialog: at the limit
    row = await harness.row(first)
    assert (row.operator_id, row.status, row.answered) == (b, "accepted", False)
