"""The outbox relay: delivers committed client messages and wake-ups to dialog workflows.

The API commits each inbound message with an outbox row before it answers; routing commits a
wake-up row with every offer it makes for another dialog. The relay, running in the worker
process, turns rows into signals (a client message signals-with-start the chat's workflow) and
marks them delivered. A row is marked only after Temporal took the signal, so a crash in
between means a second delivery, which the workflow ignores by message id.
"""

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.models import Dialog, Message, Outbox
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import ClientMessage, DialogStart

log = logging.getLogger("openlines.relay")

BATCH = 200
IDLE_POLL_S = 0.02


async def deliver_batch(
    sessions: async_sessionmaker[AsyncSession], client: Client, task_queue: str
) -> int:
    """Deliver up to ``BATCH`` undelivered rows, oldest first; returns how many."""
    async with sessions() as session, session.begin():
        rows = (
            await session.execute(
                select(Outbox, Dialog, Message)
                .join(Dialog, Dialog.id == Outbox.dialog_id)
                .outerjoin(Message, Message.id == Outbox.message_id)
                .where(Outbox.delivered_at.is_(None))
                .order_by(Outbox.id)
                .limit(BATCH)
                .with_for_update(of=Outbox, skip_locked=True)  # several workers share the work
            )
        ).all()
        if not rows:
            return 0
        # One chat's rows go in order; different chats go at once.
        by_chat: dict[int, list[tuple[Outbox, Dialog, Message | None]]] = defaultdict(list)
        for outbox, dialog, message in rows:
            by_chat[dialog.chat_id].append((outbox, dialog, message))
        results = await asyncio.gather(
            *(_deliver_chat(client, task_queue, items) for items in by_chat.values())
        )
        delivered = [row_id for ids in results for row_id in ids]
        if delivered:
            await session.execute(
                update(Outbox)
                .where(Outbox.id.in_(delivered))
                .values(delivered_at=datetime.now(UTC))
            )
        return len(delivered)


async def _deliver_chat(
    client: Client,
    task_queue: str,
    items: list[tuple[Outbox, Dialog, Message | None]],
) -> list[int]:
    """Signal one chat's rows in order; stop at the first failure so order holds."""
    delivered: list[int] = []
    for outbox, dialog, message in items:
        try:
            if outbox.kind == "message" and message is not None:
                await client.start_workflow(
                    DialogWorkflow.run,
                    DialogStart(
                        dialog_id=dialog.id,
                        chat_id=dialog.chat_id,
                        line_id=dialog.line_id,
                        channel_type=dialog.channel_type,
                    ),
                    id=workflow_id(dialog.chat_id),
                    task_queue=task_queue,
                    start_signal="client_message",
                    start_signal_args=[
                        ClientMessage(
                            message_id=message.id,
                            dialog_id=dialog.id,
                            sent_at=message.created_at,
                        )
                    ],
                )
            else:
                await _signal(client, dialog, outbox.kind)
        except RPCError as error:
            log.warning("outbox row %s not delivered yet: %s", outbox.id, error)
            break
        delivered.append(outbox.id)
    return delivered


async def _signal(client: Client, dialog: Dialog, kind: str) -> None:
    """``wake`` or ``line_deleted`` the chat's workflow; a run that has ended has nothing left
    to learn."""
    handle = client.get_workflow_handle(workflow_id(dialog.chat_id))
    try:
        if kind == "line_deleted":
            await handle.signal(DialogWorkflow.line_deleted, dialog.id)
        else:
            await handle.signal(DialogWorkflow.wake)
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise


async def run(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    task_queue: str,
    stop: asyncio.Event,
) -> None:
    """Deliver until ``stop`` is set: at once while there is work, else poll briefly."""
    while not stop.is_set():
        try:
            delivered = await deliver_batch(sessions, client, task_queue)
        except Exception:
            log.exception("outbox relay failed; retrying")
            delivered = 0
        if delivered == 0:
            try:
                await asyncio.wait_for(stop.wait(), IDLE_POLL_S)
            except TimeoutError:
                pass
