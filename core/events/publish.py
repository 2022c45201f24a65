"""Record an event in the transaction of the change it reports.

Committed with the change or not at all, so the SSE stream and webhooks never report what
did not happen, and never miss what did.
"""

from typing import Any, Literal

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from core.events.models import Event
from core.metrics import EVENTS

EventType = Literal[
    "dialog.created",
    "dialog.offered",
    "dialog.bot",  # the line's chat-bot took the dialog
    "dialog.accepted",
    "dialog.unanswered",  # waited no_answer.after without an accept
    "dialog.transferred",
    "dialog.closed",
    "message.created",
    "message.delivered",  # the channel took a message to the client
    "message.failed",  # ... or gave up on it (its error in the event)
    "kpi.overdue",
    "lead.created",
    "lead.deleted",  # by an admin (``by`` names who)
    "contact.merged",  # on someone's word (``by``); ``merge_id`` undoes it
    "contact.unmerged",
    "contact.deleted",  # by an admin (``by``)
    "notification.created",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]


def record(
    session: AsyncSession,
    type: EventType,
    *,
    dialog_id: int | None = None,
    operator_ids: list[int] | None = None,
    key: str | None = None,
    **data: Any,
) -> None:
    """Add an event; ``operator_ids`` are the operators whose consoles (SSE) show it.

    ``data`` holds ids and facts, JSON-ready (times as ISO strings). ``key`` names what the
    event reports when the caller may run twice (see ``recorded``).
    """
    payload = {"dialog_id": dialog_id, **data} if dialog_id is not None else dict(data)
    session.info.setdefault(_UNCOMMITTED, []).append(type)
    session.add(
        Event(
            type=type,
            dialog_id=dialog_id,
            operator_ids=list(operator_ids or []),
            data=payload,
            key=key,
        )
    )


# Types of the events a session recorded, counted in ``EVENTS`` once its transaction commits.
_UNCOMMITTED = "openlines_uncommitted_event_types"


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for type in session.info.pop(_UNCOMMITTED, ()):
        EVENTS.labels(type).inc()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_UNCOMMITTED, None)


async def recorded(session: AsyncSession, key: str) -> bool:
    """An event with this key was recorded already (an activity running a second time)."""
    return await session.scalar(select(Event.id).where(Event.key == key)) is not None
