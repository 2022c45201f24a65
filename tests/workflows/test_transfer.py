"""Transfers: to an operator (who owns it at once) and to another line's queue."""

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes

from core.models import Dialog
from tests.workflows.harness import Harness
from workflows import search_attributes as sa
from workflows.dialog import DialogWorkflow
from workflows.models import DialogState, Transfer


async def transfer(harness: Harness, handle, **target) -> DialogState:
    state = await harness.state(handle)
    result: DialogState = await handle.execute_update(
        DialogWorkflow.transfer,
        Transfer(dialog_id=state.dialog_id, operator_id=state.operator_id, **target),
    )
    return result


async def test_transfer_to_an_operator_makes_them_the_owner_at_once(harness: Harness):
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann])  # Bob is not even in this line's queue
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)

    state = await transfer(harness, dialog, to_operator_id=bob)

    assert (state.status, state.operator_id, state.offered_to) == ("accepted", bob, [])
    replied = await harness.reply(dialog, bob)
    assert replied.status == "operator_replied"


async def test_transfer_to_a_line_queues_it_there_under_that_lines_settings(harness: Harness):
    ann, bob = await harness.operators(2)
    first_line = await harness.line([ann])
    second_line = await harness.line([bob], handover_after=600)
    dialog = await harness.client_writes(first_line, "chat-1")
    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)

    state = await transfer(harness, dialog, to_line_id=second_line.line_id)

    assert (state.line_id, state.operator_id) == (second_line.line_id, None)
    state = await harness.offered(dialog, [bob])
    assert state.status == "queued"
    handover_in = state.deadlines["handover"] - await harness.now()
    assert 590 <= handover_in.total_seconds() <= 600  # the new line's handover_after
    described = await dialog.describe()
    attributes: TypedSearchAttributes = described.typed_search_attributes
    assert attributes.get(sa.LINE_ID) == second_line.line_id
    async with harness.sessions() as session:
        row = await session.get(Dialog, state.dialog_id)
        assert row is not None and row.line_id == second_line.line_id


async def test_only_the_owner_may_transfer(harness: Harness):
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], distribution="all")
    dialog = await harness.client_writes(channel, "chat-1")
    await harness.offered(dialog, [ann, bob])
    await harness.accept(dialog, ann)
    state = await harness.state(dialog)
    try:
        await dialog.execute_update(
            DialogWorkflow.transfer,
            Transfer(dialog_id=state.dialog_id, operator_id=bob, to_operator_id=bob),
        )
    except WorkflowUpdateFailedError as error:
        assert "is not held by operator" in str(error.cause)
    else:
        raise AssertionError("a transfer by someone who does not hold the dialog went through")
