"""Webhook subscriptions: create, list, change, delete, and each one's delivery log. Admins only.

A subscription names the event types it wants (``["*"]`` for every type, including types
added later). Its secret signs every delivery as a webhook channel's are signed
(``X-Openlines-Timestamp`` and ``X-Openlines-Signature`` over ``<timestamp>.<body>``,
``channels.webhook.signing``); it is generated when not given and shown in full only in the
create and rotate answers.
"""

import secrets
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from sqlalchemy import select, update
from temporalio.service import RPCError

from api import schema_rules
from api.deps import (
    Admin,
    AppSettings,
    Cursor,
    NoNul,
    ReadSession,
    Session,
    cursor_id,
    get_or_404,
    get_temporal,
)
from api.errors import ApiError, invalid, unavailable
from channels.webhook.signing import ROTATION_GRACE
from core.events.dispatch import ALL
from core.events.models import Event, WebhookDelivery, WebhookSubscription
from core.events.publish import EventType
from workflows.webhook_delivery import WebhookDeliveryWorkflow, workflow_id

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

# Fields that a PATCH may omit but not set to null.
NOT_NULL = ("url", "events", "active", "secret")


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host; kept as given (no normalisation)."""
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError("may not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http or https URL")
    return value


def _one_of_each(events: list[str]) -> list[str]:
    """No repeats; ``*`` stands alone, since it already means every type."""
    unique = list(dict.fromkeys(events))
    if ALL in unique and len(unique) > 1:
        raise ValueError('"*" means every event type and stands alone')
    return unique


# An absolute http(s) URI in ASCII (a host in punycode, a path percent-encoded): optional
# user info, a host, a port up to 65535, then any printable ASCII.
URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://(?:[A-Za-z0-9._~%!$&'()*+,;=:-]*@)?[A-Za-z0-9._~%!$&'()*+,;=-]+"
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?"
    r"(?:[/?#][\x21-\x7e]*)?$"
)
Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048, pattern=URL_PATTERN),
    NoNul,
    AfterValidator(_http_url),
]
Events = Annotated[
    list[Literal[EventType, "*"]],
    Field(
        min_length=1,
        max_length=50,
        description='Event types, or ["*"] for all of them',
        # "*" stands alone: one item, or no "*" among them.
        json_schema_extra={"anyOf": [{"maxItems": 1}, {"not": {"contains": {"const": "*"}}}]},
    ),
    AfterValidator(_one_of_each),
]
Secret = Annotated[
    str,
    StringConstraints(min_length=16, max_length=128),
    NoNul,
    Field(description="The HMAC-SHA256 signing key; at least 16 characters"),
]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    events: Events
    secret: Secret | None = Field(None, description="Generated when not given")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable(*NOT_NULL)
    )
    url: Url | None = None
    events: Events | None = None
    active: StrictBool | None = None
    secret: Secret | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="The signing secret; shown in full only in this answer")


class DeliveryOut(BaseModel):
    id: int
    webhook_id: int
    event_id: int
    type: str
    status: str = Field(description="pending (being tried), delivered or failed")
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


def webhook_out(row: WebhookSubscription) -> WebhookOut:
    return WebhookOut(
        id=row.id, url=row.url, events=row.events, active=row.active, created_at=row.created_at
    )


@router.post("", status_code=201)
async def create_webhook(body: WebhookCreate, session: Session, _: Admin) -> WebhookCreated:
    """Subscribe a URL; it receives the events recorded from now on."""
    secret = body.secret or secrets.token_urlsafe(32)
    row = WebhookSubscription(url=body.url, events=body.events, secret=secret, active=True)
    session.add(row)
    await session.commit()
    return WebhookCreated(**webhook_out(row).model_dump(), secret=secret)


@router.get("")
async def list_webhooks(session: ReadSession, _: Admin) -> list[WebhookOut]:
    rows = await session.scalars(
        select(WebhookSubscription)
        .where(WebhookSubscription.deleted_at.is_(None))
        .order_by(WebhookSubscription.id)
    )
    return [webhook_out(row) for row in rows]


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: int, session: ReadSession, _: Admin) -> WebhookOut:
    return webhook_out(await get_or_404(session, WebhookSubscription, webhook_id, "webhook"))


@router.patch("/{webhook_id}")
async def update_webhook(
    webhook_id: int, body: WebhookUpdate, session: Session, _: Admin
) -> WebhookOut:
    """Change the URL, the event types, the secret, or pause it (``active: false``).

    Deliveries already made keep going to the subscription as it is when they are tried.
    """
    row = await get_or_404(session, WebhookSubscription, webhook_id, "webhook", lock=True)
    changes = body.model_dump(exclude_unset=True)
    for field in NOT_NULL:
        if field in changes and changes[field] is None:
            raise invalid(field, "may not be null")
    for field, value in changes.items():
        setattr(row, field, value)
    await session.commit()
    return webhook_out(row)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: int, session: Session, _: Admin) -> None:
    """Stop deliveries; the delivery log is kept."""
    row = await get_or_404(session, WebhookSubscription, webhook_id, "webhook", lock=True)
    row.deleted_at = datetime.now(UTC)
    row.active = False
    await session.commit()


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: int,
    session: ReadSession,
    _: Admin,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> DeliveryPage:
    """The delivery log, newest first. ``cursor`` is the ``next_cursor`` of the previous page."""
    await get_or_404(session, WebhookSubscription, webhook_id, "webhook")
    query = (
        select(WebhookDelivery, Event.type)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if (after := cursor_id(cursor)) is not None:
        query = query.where(WebhookDelivery.id < after)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    rows = list(await session.execute(query))
    items = [delivery_out(delivery, event_type) for delivery, event_type in rows[:limit]]
    next_cursor = str(items[-1].id) if len(rows) > limit else None
    return DeliveryPage(items=items, next_cursor=next_cursor)


def delivery_out(delivery: WebhookDelivery, event_type: str) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        type=event_type,
        status=delivery.status,
        attempts=delivery.attempts,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        created_at=delivery.created_at,
        delivered_at=delivery.delivered_at,
    )


@router.post("/{webhook_id}/rotate-secret")
async def rotate_secret(webhook_id: int, session: Session, _: Admin) -> WebhookCreated:
    """A new signing secret. For 24 hours deliveries carry two signatures (the new
    secret's and the previous one's, comma-separated), so the subscriber can switch over."""
    row = await get_or_404(session, WebhookSubscription, webhook_id, "webhook", lock=True)
    row.previous_secret = row.secret
    row.previous_secret_until = datetime.now(UTC) + ROTATION_GRACE
    row.secret = secrets.token_urlsafe(32)
    await session.commit()
    return WebhookCreated(**webhook_out(row).model_dump(), secret=row.secret)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202)
async def redeliver(
    webhook_id: int,
    delivery_id: int,
    request: Request,
    session: Session,
    settings: AppSettings,
    _: Admin,
) -> DeliveryOut:
    """Send a failed delivery again, with a new round of attempts (409 unless failed)."""
    subscription = await get_or_404(session, WebhookSubscription, webhook_id, "webhook")
    delivery = await get_or_404(session, WebhookDelivery, delivery_id, "delivery", lock=True)
    if delivery.webhook_id != subscription.id:
        raise ApiError(404, f"delivery {delivery_id} does not exist")
    if delivery.status != "failed":
        raise ApiError(
            409, f"delivery {delivery_id} is {delivery.status}: only a failed one goes again"
        )
    event_type = await session.scalar(select(Event.type).where(Event.id == delivery.event_id))
    delivery.status, delivery.last_error = "pending", None
    await session.commit()
    try:
        client = await get_temporal(request)
        await client.start_workflow(
            WebhookDeliveryWorkflow.run,
            delivery_id,
            id=f"{workflow_id(delivery_id)}-again-{secrets.token_hex(4)}",
            task_queue=settings.task_queue,
        )
    except (RPCError, ApiError):  # refused, or no connection (get_temporal's 503)
        # Not started: the row goes back to failed, so it can be asked for again.
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
            .values(status="failed", last_error="redelivery not started: Temporal unavailable")
        )
        await session.commit()
        raise unavailable("Temporal is unavailable; try again") from None
    return delivery_out(delivery, event_type or "")
