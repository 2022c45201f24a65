"""The events a dialog's life records (what SSE consoles and webhooks receive)."""

from sqlalchemy import select

from activities.dialogs import DialogActivities
from core.events.models import Event
from tests.workflows.harness import Harness
from workflows.models import Reply, Transfer


async def events_of(harness: Harness, dialog_id: int) -> list[tuple[str, list[int]]]:
    async with harness.sessions() as session:
        rows = await session.scalars(
            select(Event).where(Event.dialog_id == dialog_id).order_by(Event.id)
        )
        return [(e.type, e.operator_ids) for e in rows]


async def test_a_dialogs_life_is_told_once_each_to_the_operators_concerned(
    harness: Harness,
) -> None:
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann], {"rating_wait": 0}, handover_after=3600)
    dialog = await harness.client_writes(channel, "events-1")
    await harness.offered(dialog, [ann])
    state = await harness.reply(dialog, ann, message_id=0)
    again = Reply(dialog_id=state.dialog_id, operator_id=ann, message_id=0)
    await DialogActivities(harness.sessions).reply(again)  # a retried activity: no new event
    await dialog.execute_update(
        "transfer", Transfer(dialog_id=state.dialog_id, operator_id=ann, to_operator_id=bob)
    )
    transfer = Transfer(dialog_id=state.dialog_id, operator_id=ann, to_operator_id=bob)
    await DialogActivities(harness.sessions).transfer(transfer)  # run twice: told once
    await harness.close(dialog, bob)
    await harness.result(dialog)

    told = await events_of(harness, state.dialog_id)
    # The lead comes from a workflow of its own, at its own pace: once, somewhere.
    assert [event for event, _ in told].count("lead.created") == 1
    assert [event for event in told if event[0] != "lead.created"] == [
        ("dialog.created", []),
        ("message.created", []),  # filed before anyone was offered it
        ("dialog.offered", [ann]),
        ("message.created", [ann]),  # the welcome text
        ("dialog.accepted", [ann]),  # the reply accepted it
        ("message.created", [ann]),  # the reply
        ("dialog.transferred", [bob]),
        ("message.created", [bob]),  # the close text
        ("message.created", [bob]),  # the rating request
        ("dialog.closed", [bob]),
    ]
