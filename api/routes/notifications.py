"""In-app notifications (KPI overdue alerts among them): the caller's list, and marking read.

A notification belongs to an operator (a supervisor is an operator too). A key bound to an
operator (operator keys always, supervisor keys when issued with ``operator_id``) sees that
operator's notifications; an admin key sees everyone's, or one recipient's with
``?recipient_id=``. A supervisor key bound to no operator has no notifications of its own and
gets a 403 that says how to fix it, rather than an empty list that would hide the mistake.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import Cursor, DbId, Principal, Reader, ReadSession, Session, cursor_id, get_or_404
from api.errors import ApiError
from core.events.models import Notification

router = APIRouter(prefix="/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    id: int
    recipient_id: int
    kind: str
    text: str
    dialog_id: int | None
    url: str | None
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


def recipient_of(principal: Principal, asked: int | None) -> int | None:
    """Whose notifications the caller sees: its own operator's; for an admin, the one asked
    for or (None) everyone's."""
    if principal.role == "admin":
        return asked
    if principal.operator_id is None:
        raise ApiError(
            403,
            f"this {principal.role} key is not bound to an operator, so it has no "
            "notifications; issue one with operator_id",
        )
    if asked is not None and asked != principal.operator_id:
        raise ApiError(403, "a key sees only its own operator's notifications")
    return principal.operator_id


@router.get("")
async def list_notifications(
    session: ReadSession,
    principal: Reader,
    recipient_id: DbId | None = None,
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> NotificationPage:
    """Newest first; ``unread=true`` leaves out those already read. ``cursor`` is the
    ``next_cursor`` of the previous page."""
    recipient = recipient_of(principal, recipient_id)
    query = select(Notification).order_by(Notification.id.desc()).limit(limit + 1)
    if recipient is not None:
        query = query.where(Notification.recipient_id == recipient)
    if unread:
        query = query.where(Notification.read_at.is_(None))
    if (after := cursor_id(cursor)) is not None:
        query = query.where(Notification.id < after)
    rows = list(await session.scalars(query))
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return NotificationPage(
        items=[notification_out(n) for n in rows[:limit]], next_cursor=next_cursor
    )


@router.post("/{notification_id}/read")
async def mark_read(notification_id: int, session: Session, principal: Reader) -> NotificationOut:
    """Mark the notification read (again: no change, the first time is kept)."""
    row = await get_or_404(session, Notification, notification_id, "notification")
    if principal.role != "admin" and recipient_of(principal, None) != row.recipient_id:
        raise ApiError(403, f"notification {notification_id} is for another operator")
    if row.read_at is None:
        row.read_at = datetime.now(UTC)
        await session.commit()
    return notification_out(row)
