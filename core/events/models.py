"""Event, notification and webhook tables."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow
from core.secrets_at_rest import EncryptedString

_UNDISPATCHED = text("dispatched_at IS NULL")


class Event(Base):
    """Something that happened, committed with the change itself.

    The SSE stream reads them by id; the worker's dispatcher hands each to the webhook
    subscriptions that want it and marks it dispatched.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_undispatched",
            "id",
            sqlite_where=_UNDISPATCHED,
            postgresql_where=_UNDISPATCHED,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))  # dialog.created, message.created, ...
    dialog_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # The operators whose consoles (SSE) show it.
    operator_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # What the event reports, for events an activity might record twice (``record``).
    key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]


class Notification(Base):
    """An in-app notification for one operator (a supervisor is an operator too)."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_recipient", "recipient_id", "id"),
        UniqueConstraint("recipient_id", "key", name="uq_notifications_recipient_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # kpi.overdue
    text: Mapped[str] = mapped_column(String)
    dialog_id: Mapped[int | None] = mapped_column(ForeignKey("dialogs.id"))
    url: Mapped[str | None] = mapped_column(String(2048))
    # What the notification is about, so a retried activity notifies once.
    key: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class WebhookSubscription(Base):
    """An HTTP endpoint that receives the events it subscribed to, signed with its secret."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    # Stored encrypted when OPENLINES_SECRET_KEY is set (``core/secrets_at_rest.py``).
    secret: Mapped[str] = mapped_column(EncryptedString(1024, "webhooks.secret"))
    # The secret before the last rotation, which still signs until ``previous_secret_until``.
    previous_secret: Mapped[str | None] = mapped_column(
        EncryptedString(1024, "webhooks.previous_secret")
    )
    previous_secret_until: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """The delivery log: one row per event and subscription, however often it is tried."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
