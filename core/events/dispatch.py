"""Hand recorded events to the webhook subscriptions that want them (run by the worker's relay).

Each event gets one delivery row per subscription that wants its type (an active subscription,
not deleted, created before the event), and each delivery row one ``WebhookDeliveryWorkflow``
that makes the POSTs and their retries.

Crash safety, with no column beyond ``events.dispatched_at``: an event is marked dispatched
only once the workflow of every one of its pending deliveries has been started.

1. Claim (one short transaction): the oldest undispatched events, row-locked and skipped by
   other workers meanwhile; add the delivery rows they lack (the unique webhook + event pair
   makes "lack" exact); mark dispatched at once the events that have no pending delivery, which
   is most of them. Commit. With no subscription at all, one UPDATE marks every undispatched
   event and nothing is loaded.
2. Start the workflows of the remaining events' pending deliveries, with no transaction open
   (Temporal's answer must not hold a database lock; on SQLite it would stop every writer).
   The workflow id is the delivery id and ``REJECT_DUPLICATE`` refuses a second run, so a start
   that was already made is recognised (``WorkflowAlreadyStartedError``) and counts as made.
3. Mark dispatched the events whose starts all went through.

A crash or a failed start between 1 and 3 leaves the event undispatched: the next round claims
it again, finds its delivery rows, adds none, and starts their workflows (again, harmlessly).
The undispatched events are what the partial index ``ix_events_undispatched`` finds cheaply,
so retrying costs no scan of the delivery log. Two workers may both start the same delivery
in that window; one of them is refused, and the delivery is still made once.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from core.events.models import Event, WebhookDelivery, WebhookSubscription
from core.temporal import start_once
from workflows.webhook_delivery import WebhookDeliveryWorkflow, workflow_id

log = logging.getLogger("openlines.dispatch")

BATCH = 200
STARTS_AT_ONCE = 20
ALL = "*"
"""In a subscription's ``events``: every event type, including types added later."""


def wants(subscription: WebhookSubscription, event: Event) -> bool:
    """Whether the subscription gets the event: it wants the type and existed before it."""
    return (ALL in subscription.events or event.type in subscription.events) and (
        subscription.created_at < event.created_at
    )


async def dispatch_batch(
    sessions: async_sessionmaker[AsyncSession], client: Client, task_queue: str
) -> int:
    """Dispatch up to ``BATCH`` undispatched events, oldest first; returns how many were
    marked dispatched (0 when there was nothing to do, or nothing could be started)."""
    done, to_start = await _claim(sessions)
    if not to_start:
        return done
    semaphore = asyncio.Semaphore(STARTS_AT_ONCE)

    async def start(delivery_id: int) -> bool:
        async with semaphore:
            return await _start(client, task_queue, delivery_id)

    pairs = [(event_id, d) for event_id, deliveries in to_start.items() for d in deliveries]
    started = await asyncio.gather(*(start(d) for _, d in pairs))
    failed = {event_id for (event_id, _), ok in zip(pairs, started, strict=True) if not ok}
    ready = [event_id for event_id in to_start if event_id not in failed]
    await _mark_dispatched(sessions, ready)
    return done + len(ready)


async def _claim(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, dict[int, list[int]]]:
    """Step 1: how many events were marked dispatched, and the pending deliveries (by event)
    whose workflows are to be started before their events are."""
    async with sessions() as session, session.begin():
        # Few rows: every subscription ever made, so that the deliveries of one deleted since
        # an earlier round are found (by the unique index: webhook ids first).
        subscriptions = list(await session.scalars(select(WebhookSubscription)))
        if not subscriptions:  # nobody to deliver to: no event needs loading
            marked = await session.execute(
                update(Event)
                .where(Event.dispatched_at.is_(None))
                .values(dispatched_at=datetime.now(UTC))
            )
            return marked.rowcount, {}  # type: ignore[attr-defined]
        events = list(
            await session.scalars(
                select(Event)
                .where(Event.dispatched_at.is_(None))
                .order_by(Event.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)  # several workers share the work
            )
        )
        if not events:
            return 0, {}
        to_start: dict[int, list[int]] = defaultdict(list)
        await _add_deliveries(session, events, subscriptions)
        pending = await session.execute(
            select(WebhookDelivery.id, WebhookDelivery.event_id)
            .where(WebhookDelivery.webhook_id.in_([s.id for s in subscriptions]))
            .where(WebhookDelivery.event_id.in_([e.id for e in events]))
            .where(WebhookDelivery.status == "pending")
            .order_by(WebhookDelivery.id)
        )
        for delivery_id, event_id in pending:
            to_start[event_id].append(delivery_id)
        done = [e.id for e in events if e.id not in to_start]
        await _mark_dispatched(sessions, done, session)
    return len(done), dict(to_start)


async def _add_deliveries(
    session: AsyncSession, events: list[Event], subscriptions: list[WebhookSubscription]
) -> None:
    """The delivery rows the events lack. Their rows are locked, so nobody adds them too."""
    live = [s for s in subscriptions if s.active and s.deleted_at is None]
    if not live:
        return
    made = await session.execute(
        select(WebhookDelivery.webhook_id, WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id.in_([s.id for s in live]))
        .where(WebhookDelivery.event_id.in_([e.id for e in events]))
    )
    existing = {(webhook_id, event_id) for webhook_id, event_id in made}
    session.add_all(
        WebhookDelivery(webhook_id=s.id, event_id=e.id, status="pending", attempts=0)
        for e in events
        for s in live
        if wants(s, e) and (s.id, e.id) not in existing
    )
    await session.flush()


async def _start(client: Client, task_queue: str, delivery_id: int) -> bool:
    """Step 2 for one delivery: whether its workflow runs (or has run) now."""
    try:  # started before (an earlier round, another worker) counts as started
        await start_once(
            client,
            WebhookDeliveryWorkflow.run,
            delivery_id,
            id=workflow_id(delivery_id),
            task_queue=task_queue,
        )
    except RPCError as error:
        log.warning("webhook delivery %s not started yet: %s", delivery_id, error)
        return False
    return True


async def _mark_dispatched(
    sessions: async_sessionmaker[AsyncSession],
    event_ids: Iterable[int],
    session: AsyncSession | None = None,
) -> None:
    """Set ``dispatched_at`` on the events (in ``session``'s transaction, or a new one)."""
    ids = list(event_ids)
    if not ids:
        return
    statement = (
        update(Event)
        .where(Event.id.in_(ids), Event.dispatched_at.is_(None))
        .values(dispatched_at=datetime.now(UTC))
    )
    if session is not None:
        await session.execute(statement)
        return
    async with sessions() as own, own.begin():
        await own.execute(statement)
