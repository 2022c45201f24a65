"""The outbox relay: delivers committed client messages and wake-ups to dialog workflows.

The API commits each inbound message with an outbox row before it answers; routing commits a
wake-up row with every offer it makes for another dialog. The relay, running in the worker
process, turns rows into signals (a client message signals-with-start the chat's workflow) and
marks them delivered. A row is marked only after Temporal took the signal, so a crash in
between means a second delivery, which the workflow ignores by message id.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.service import RPCError, RPCStatusCode

from core import tracing
from core.backoff import Backoff
from core.events.dispatch import BATCH as DISPATCH_BATCH
from core.events.dispatch import dispatch_batch
from core.inbound import may_hold_contact, rating_reply
from core.metrics import RELAY_DELIVERIES, RELAY_FAILURES
from core.models import CLOSED_DIALOG_STATUSES, Dialog, Message, Operator, Outbox
from core.relay_wakeups import Wakeups
from core.temporal import start_once
from workflows import search_attributes as sa
from workflows.channel_delivery import ChannelDeliveryWorkflow
from workflows.channel_delivery import workflow_id as delivery_workflow_id
from workflows.crm_sync import CrmSyncWorkflow, CrmTask
from workflows.crm_sync import workflow_id as crm_workflow_id
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.late_rating import LateRatingWorkflow
from workflows.late_rating import workflow_id as late_rating_workflow_id
from workflows.models import ClientMessage, ClientRating, DialogStart
from workflows.vacation import VacationWorkflow
from workflows.vacation import workflow_id as vacation_workflow_id

log = logging.getLogger("openlines.relay")

BATCH = 200
CLAIM = timedelta(seconds=30)
DISPATCH_EVERY_S = 0.2


Row = tuple[Outbox, Dialog | None, Message | None, Operator | None]


async def deliver_batch(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    task_queue: str,
    max_history_events: int = DialogStart.model_fields["max_history_events"].default,
) -> int:
    """Deliver up to ``BATCH`` undelivered rows, oldest first; returns how many.

    Three short transactions (claim, then mark) around the calls to Temporal, so no database
    lock is held while Temporal answers: on SQLite any open write transaction stops every
    other writer, inbound messages and routing included.
    """
    rows = await _claim(sessions)
    if not rows:
        return 0
    # One workflow's rows go in order; different workflows' rows go at once.
    by_workflow: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        _, dialog, _, operator = row
        key = workflow_id(dialog.chat_id) if dialog else f"operator-{operator and operator.id}"
        by_workflow[key].append(row)
    # Each workflow's rows report what they delivered, whatever another's did: one failure
    # must not send a whole batch again.
    results = await asyncio.gather(
        *(
            _deliver_in_order(client, task_queue, max_history_events, items)
            for items in by_workflow.values()
        )
    )
    delivered = [row_id for ids in results for row_id in ids]
    async with sessions() as session, session.begin():
        if delivered:
            await session.execute(
                update(Outbox)
                .where(Outbox.id.in_(delivered))
                .values(delivered_at=datetime.now(UTC))
            )
        done = set(delivered)
        undelivered = [outbox.id for outbox, *_ in rows if outbox.id not in done]
        if undelivered:  # the next round tries them first, in order
            await session.execute(
                update(Outbox).where(Outbox.id.in_(undelivered)).values(claimed_until=None)
            )
    return len(delivered)


async def _claim(sessions: async_sessionmaker[AsyncSession]) -> list[Row]:
    """Take up to ``BATCH`` rows nobody is delivering, for ``CLAIM`` (a relay that dies
    holding a claim only delays its rows; delivering one twice is harmless)."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        rows: list[Row] = [
            tuple(row)  # type: ignore[misc]
            for row in await session.execute(
                select(Outbox, Dialog, Message, Operator)
                .outerjoin(Dialog, Dialog.id == Outbox.dialog_id)
                .outerjoin(Message, Message.id == Outbox.message_id)
                .outerjoin(Operator, Operator.id == Outbox.operator_id)
                .where(Outbox.delivered_at.is_(None))
                .where(or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now))
                .order_by(Outbox.id)
                .limit(BATCH)
                .with_for_update(of=Outbox, skip_locked=True)  # several workers share the work
            )
        ]
        if rows:
            await session.execute(
                update(Outbox)
                .where(Outbox.id.in_([outbox.id for outbox, *_ in rows]))
                .values(claimed_until=now + CLAIM)
                # Not "evaluate" (the default): it matches the IN list against every row the
                # session just loaded, 200 x 200 comparisons in Python for a full batch.
                .execution_options(synchronize_session=False)
            )
    return rows


async def _deliver_in_order(
    client: Client, task_queue: str, max_history_events: int, rows: list[Row]
) -> list[int]:
    """Deliver one workflow's rows in order; stop at the first failure so order holds."""
    delivered: list[int] = []
    for row in rows:
        outbox = row[0]
        try:
            # The span continues the trace of whoever wrote the row (tracing on).
            with tracing.continued(
                outbox.trace_context, f"relay {outbox.kind}", **{"openlines.outbox_id": outbox.id}
            ):
                await _deliver_row(client, task_queue, max_history_events, row)
        except Exception as error:  # Temporal down, a bad row: tried again on the next round
            RELAY_FAILURES.labels(outbox.kind).inc()
            log.warning("outbox row %s not delivered yet: %s", outbox.id, error)
            break
        RELAY_DELIVERIES.labels(outbox.kind).inc()
        delivered.append(outbox.id)
    return delivered


async def _deliver_row(client: Client, task_queue: str, max_history_events: int, row: Row) -> None:
    """Hand one outbox row to its workflow."""
    outbox, dialog, message, operator = row
    if dialog is not None and outbox.kind in ("lead", "lead_owner"):
        await _crm_sync(client, task_queue, outbox, dialog)
    elif dialog is not None and message is not None and outbox.kind == "deliver":
        await _channel_delivery(client, task_queue, dialog, message)
    elif dialog is not None and message is not None and outbox.kind == "rating":
        await _late_rating(client, task_queue, dialog, message)
    elif dialog is not None and message is not None:
        if dialog.status not in CLOSED_DIALOG_STATUSES:
            await _client_message(client, task_queue, max_history_events, dialog, message)
        # else: delivered before (a dialog closes only once its run has seen all its
        # messages): starting its run again would revive a dialog that has ended.
    elif dialog is not None:
        await _signal(client, dialog, outbox.kind)
    elif operator is not None:
        await _vacation(client, task_queue, operator)


async def _client_message(
    client: Client, task_queue: str, max_history_events: int, dialog: Dialog, message: Message
) -> None:
    """Signal-with-start: the chat's running workflow gets it, or a new run starts with it."""
    await client.start_workflow(
        DialogWorkflow.run,
        DialogStart(
            dialog_id=dialog.id,
            chat_id=dialog.chat_id,
            line_id=dialog.line_id,
            channel_type=dialog.channel_type,
            max_history_events=max_history_events,
        ),
        id=workflow_id(dialog.chat_id),
        task_queue=task_queue,
        static_summary=f"Chat {dialog.chat_id}: dialog {dialog.id}, line {dialog.line_id}, "
        f"{dialog.channel_type} channel",
        # Findable in the Temporal UI from its first event; the run upserts what changes.
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.LINE_ID, dialog.line_id),
                SearchAttributePair(sa.CLIENT_ID, dialog.chat_id),
                SearchAttributePair(sa.CHANNEL_TYPE, dialog.channel_type),
                SearchAttributePair(sa.DIALOG_STATUS, dialog.status),
            ]
        ),
        start_signal="client_message",
        start_signal_args=[
            ClientMessage(
                message_id=message.id,
                dialog_id=dialog.id,
                sent_at=message.created_at,
                rating=rating_reply(dialog.channel_type, message.text),
                contact_hint=may_hold_contact(message.text),
            )
        ],
    )


async def _channel_delivery(
    client: Client, task_queue: str, dialog: Dialog, message: Message
) -> None:
    """Signal-with-start: the chat's delivery run sends the message after those before it."""
    await client.start_workflow(
        ChannelDeliveryWorkflow.run,
        [],
        id=delivery_workflow_id(dialog.chat_id),
        task_queue=task_queue,
        static_summary=f"Chat {dialog.chat_id}: messages to the client, {dialog.channel_type}",
        start_signal="owe",
        start_signal_args=[message.id],
    )


async def _late_rating(client: Client, task_queue: str, dialog: Dialog, message: Message) -> None:
    """A ``1`` / ``0`` for a dialog that has closed: its own short run records it."""
    value = rating_reply(dialog.channel_type, message.text)
    assert value is not None, f"message {message.id} is not a rating"
    rating = ClientRating(dialog_id=dialog.id, value=value, message_id=message.id)
    await start_once(
        client,
        LateRatingWorkflow.run,
        rating,
        id=late_rating_workflow_id(rating),
        task_queue=task_queue,
    )


async def _crm_sync(client: Client, task_queue: str, outbox: Outbox, dialog: Dialog) -> None:
    """Create the dialog's lead, or tell the external CRM its new responsible, apart from the
    dialog: a CRM outage delays the lead, never the dialog."""
    task = CrmTask(
        kind="create_lead" if outbox.kind == "lead" else "reassign_lead",
        dialog_id=dialog.id,
        request_id=outbox.id,
    )
    # One run per lead: a request made before is not made again.
    await start_once(
        client, CrmSyncWorkflow.run, task, id=crm_workflow_id(task), task_queue=task_queue
    )


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


async def _vacation(client: Client, task_queue: str, operator: Operator) -> None:
    """(Re)start the timer for the end of the operator's vacation; none if it is over."""
    wf_id = vacation_workflow_id(operator.id)
    if operator.vacation_until is None or operator.vacation_until <= datetime.now(UTC):
        try:
            await client.get_workflow_handle(wf_id).terminate("vacation ended or cancelled")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        return
    await client.start_workflow(
        VacationWorkflow.run,
        args=[operator.id, operator.vacation_until],
        id=wf_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )


async def run(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    task_queue: str,
    stop: asyncio.Event,
    max_history_events: int = DialogStart.model_fields["max_history_events"].default,
    wakeups: Wakeups | None = None,
) -> None:
    """Deliver outbox rows and dispatch events until ``stop`` is set.

    Outbox rows go at once while there are more, else when ``wakeups`` (listening, on
    PostgreSQL) say new ones were committed; without them the relay polls every few
    milliseconds. Events are dispatched every ``DISPATCH_EVERY_S``: webhooks need no
    millisecond latency, and a notification per event would cost every transaction that
    records one a database-wide lock at commit (see migration 0004).
    """
    await asyncio.gather(
        _deliver(sessions, client, task_queue, stop, max_history_events, wakeups or Wakeups()),
        _dispatch(sessions, client, task_queue, stop),
    )


async def _deliver(
    sessions: async_sessionmaker[AsyncSession],
    client: Client,
    task_queue: str,
    stop: asyncio.Event,
    max_history_events: int,
    wakeups: Wakeups,
) -> None:
    backoff = Backoff(log, "outbox relay")
    while not stop.is_set():
        wakeups.looking()
        try:
            delivered = await deliver_batch(sessions, client, task_queue, max_history_events)
        except Exception as error:
            await backoff.failed(error, stop)
            continue
        backoff.succeeded()
        if delivered == 0:
            await wakeups.wait(stop)


async def _dispatch(
    sessions: async_sessionmaker[AsyncSession], client: Client, task_queue: str, stop: asyncio.Event
) -> None:
    backoff = Backoff(log, "event dispatch")
    while not stop.is_set():
        try:
            dispatched = await dispatch_batch(sessions, client, task_queue)
        except Exception as error:
            await backoff.failed(error, stop)
            continue
        backoff.succeeded()
        if dispatched < DISPATCH_BATCH:  # a full batch: more are waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DISPATCH_EVERY_S)
