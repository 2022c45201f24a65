"""The dialog workflow's own timers, on the time-skipping server."""

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import ClientMessage, DialogStart

START = DialogStart(dialog_id=1, chat_id=7, line_id=3, channel_type="api")


async def test_unanswered_dialog_expires_after_30_days(env: WorkflowEnvironment, task_queue: str):
    async with Worker(env.client, task_queue=task_queue, workflows=[DialogWorkflow]):
        handle = await env.client.start_workflow(
            DialogWorkflow.run, START, id=workflow_id(START.chat_id), task_queue=task_queue
        )
        sent = await env.get_current_time()
        await handle.signal(
            DialogWorkflow.client_message, ClientMessage(message_id=1, sent_at=sent)
        )
        state = await handle.query(DialogWorkflow.state)
        assert state.deadlines["expiry"] == sent + timedelta(days=30)

        result = await handle.result()

    assert (result.status, result.close_reason) == ("closed", "expired")
    assert await env.get_current_time() >= sent + timedelta(days=30)


async def test_redelivered_message_is_ignored(env: WorkflowEnvironment, task_queue: str):
    async with Worker(env.client, task_queue=task_queue, workflows=[DialogWorkflow]):
        handle = await env.client.start_workflow(
            DialogWorkflow.run, START, id=workflow_id(99), task_queue=task_queue
        )
        first = ClientMessage(message_id=5, sent_at=await env.get_current_time())
        await handle.signal(DialogWorkflow.client_message, first)
        await handle.signal(DialogWorkflow.client_message, first)
        state = await handle.query(DialogWorkflow.state)
        assert state.seen_message_ids == [5]
        await handle.terminate()
