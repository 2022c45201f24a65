"""A dialog's life apart from distribution: expiry, redelivery, closing."""

import asyncio
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from core.models import Dialog
from tests.workflows.harness import Harness
from workflows import search_attributes as sa
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


async def test_ops_see_status_operator_and_next_deadline_in_the_temporal_ui(harness: Harness):
    (ann,) = await harness.operators(1)
    channel = await harness.line([ann], handover_after=120)
    dialog = await harness.client_writes(channel, "chat-ui")
    state = await harness.offered(dialog, [ann])

    details = await dialog.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    nearest = min(state.deadlines.values())  # the no-answer mark, before the handover
    assert details.current_details == (
        f"dialog {state.dialog_id}: queued, offered to [{ann}], next deadline {nearest.isoformat()}"
    )
    await harness.accept(dialog, ann)
    for _ in range(100):  # the upsert follows the update within the workflow's next task
        attributes = (await dialog.describe()).typed_search_attributes
        if attributes.get(sa.OPERATOR_ID) == ann:
            break
        await asyncio.sleep(0.02)
    assert attributes.get(sa.OPERATOR_ID) == ann
    assert attributes.get(sa.DIALOG_STATUS) == "accepted"
    assert attributes.get(sa.LINE_ID) == channel.line_id
    assert attributes.get(sa.CHANNEL_TYPE) == "api"
    assert attributes.get(sa.CLIENT_ID) == state.chat_id


async def test_a_moved_deadline_shows_in_the_details_without_an_upsert_event(harness: Harness):
    """Each search-attribute upsert is a history event: a client message that moves only a
    deadline updates the summary ops see, and the search attributes stay as they were."""
    channel = await harness.line([])  # nobody to offer it to: queued, the expiry moves
    dialog = await harness.client_writes(channel, "chat-moved")
    await harness.eventually(dialog, lambda s: s.status == "queued")
    upserts = await _upserts(dialog)
    before = await _details(dialog)

    await harness.sleep(3600)
    await harness.client_writes(channel, "chat-moved", "Still there?")
    state = await harness.eventually(dialog, lambda s: len(s.seen_message_ids) == 2)
    deadline = min(state.deadlines.values())
    for _ in range(100):
        if deadline.isoformat() in await _details(dialog):
            break
        await asyncio.sleep(0.02)

    assert deadline.isoformat() in await _details(dialog)
    assert await _details(dialog) != before
    assert await _upserts(dialog) == upserts
    attributes = (await dialog.describe()).typed_search_attributes
    assert attributes.get(sa.DIALOG_STATUS) == "queued"


async def _details(dialog: WorkflowHandle[Any, Any]) -> str:
    metadata = await dialog.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def _upserts(dialog: WorkflowHandle[Any, Any]) -> int:
    history = await dialog.fetch_history()
    upsert = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    return sum(1 for event in history.events if event.event_type == upsert)


async def test_the_dialog_row_names_its_run_once_it_is_offered(harness: Harness):
    """The API's link to the Temporal UI needs the run id; joining the queue writes it."""
    (ann,) = await harness.operators(1)
    channel = await harness.line([ann])
    dialog = await harness.client_writes(channel, "chat-run")
    state = await harness.offered(dialog, [ann])

    async with harness.sessions() as session:
        row = await session.get(Dialog, state.dialog_id)
    assert row is not None and row.run_id == (await dialog.describe()).run_id
