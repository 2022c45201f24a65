"""Prometheus metrics of the dialog engine: what flows through it and what waits in it.

Counters count in the process that does the work (the worker, mostly; events recorded by the
API count there), so dashboards sum them over all processes. Gauges describe the database,
which every worker samples alike (``sample``), so dashboards take their ``max``.

Label values come from bounded sets: event types, outbox kinds, channel types, send outcomes
and line ids (lines are made by admins, and ``OPENLINES_MAX_LINES`` can cap them).
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import REGISTRY, Counter, Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import CLOSED_DIALOG_STATUSES, Dialog, Outbox
from workflows.models import Status

log = logging.getLogger("openlines.metrics")

EVENTS = Counter(
    "openlines_events_total",
    "Events committed, by type (dialog.offered: offers, dialog.accepted: accepts, ...)",
    ["type"],
)
HANDOVERS = Counter(
    "openlines_handovers_total", "Offers moved on because nobody accepted in time", ["line"]
)
RELAY_DELIVERIES = Counter(
    "openlines_relay_deliveries_total", "Outbox rows the relay handed to Temporal", ["kind"]
)
RELAY_FAILURES = Counter(
    "openlines_relay_failures_total", "Outbox rows Temporal did not take (retried)", ["kind"]
)
SENDS = Counter(
    "openlines_outbound_sends_total",
    "Attempts to send a message to a client: sent, failed (for good) or retry",
    ["channel", "status"],
)
OUTBOX_BACKLOG = Gauge("openlines_outbox_backlog", "Outbox rows not yet delivered", registry=None)
OUTBOX_AGE = Gauge(
    "openlines_outbox_oldest_age_seconds",
    "Age of the oldest undelivered outbox row (0: none)",
    registry=None,
)
QUEUE_LENGTH = Gauge(
    "openlines_queue_length", "Dialogs of a line waiting for an operator", ["line"], registry=None
)
QUEUE_OLDEST_WAIT = Gauge(
    "openlines_queue_oldest_wait_seconds",
    "How long the longest-waiting dialog of a line has waited for an operator",
    ["line"],
    registry=None,
)
KPI_OVERDUE = Gauge(
    "openlines_kpi_overdue_dialogs",
    "Open dialogs of a line past an answer-time KPI",
    ["line"],
    registry=None,
)

# Registered by the process that samples them (the worker): an API would export zeros.
SAMPLED = (OUTBOX_BACKLOG, OUTBOX_AGE, QUEUE_LENGTH, QUEUE_OLDEST_WAIT, KPI_OVERDUE)

# Statuses a dialog is open in (listed, so the status index serves the query).
OPEN_STATUSES = tuple(s for s in get_args(Status) if s not in CLOSED_DIALOG_STATUSES)
# Waiting for an operator: not taken by one (nor by a bot), and not ended.
WAITING_STATUSES = ("new", "queued")
SAMPLE_EVERY_S = 15.0


async def sample(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Read the backlog, queues and overdue dialogs from the database into the gauges."""
    now = datetime.now(UTC)
    async with sessions() as session:
        backlog, oldest = (
            await session.execute(
                select(func.count(), func.min(Outbox.created_at)).where(
                    Outbox.delivered_at.is_(None)
                )
            )
        ).one()
        queues = (
            await session.execute(
                select(
                    Dialog.line_id,
                    func.count(),
                    func.min(func.coalesce(Dialog.waiting_since, Dialog.started_at)),
                )
                .where(Dialog.status.in_(WAITING_STATUSES), Dialog.operator_id.is_(None))
                .group_by(Dialog.line_id)
            )
        ).all()
        overdue = (
            await session.execute(
                select(Dialog.line_id, func.count())
                .where(Dialog.kpi_overdue > 0, Dialog.status.in_(OPEN_STATUSES))
                .group_by(Dialog.line_id)
            )
        ).all()
    OUTBOX_BACKLOG.set(backlog)
    OUTBOX_AGE.set(_seconds_since(oldest, now))
    _set_by_line(QUEUE_LENGTH, {line: count for line, count, _ in queues})
    _set_by_line(QUEUE_OLDEST_WAIT, {line: _seconds_since(since, now) for line, _, since in queues})
    _set_by_line(KPI_OVERDUE, dict(overdue))


async def keep_sampling(
    sessions: async_sessionmaker[AsyncSession], stop: asyncio.Event, every_s: float = SAMPLE_EVERY_S
) -> None:
    """``sample`` every ``every_s`` until ``stop``; a failed sample leaves the last values.

    The gauges join this process's ``/metrics`` from the first round on.
    """
    for gauge in SAMPLED:
        with contextlib.suppress(ValueError):  # registered by an earlier call (tests)
            REGISTRY.register(gauge)
    while not stop.is_set():
        try:
            await sample(sessions)
        except Exception as error:  # the database is down: the next round tries again
            log.warning("metrics not sampled: %s", error)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite hands back naive UTC
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def _set_by_line(gauge: Gauge, values: dict[int, float]) -> None:
    """Set each line's value; a line that left the set (its queue emptied) goes to zero."""
    for metric in gauge.collect():
        for series in metric.samples:
            if int(series.labels["line"]) not in values:
                gauge.labels(series.labels["line"]).set(0)
    for line, value in values.items():
        gauge.labels(line).set(value)
