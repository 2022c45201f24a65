"""Inbound client messages for ``api`` and ``webhook`` channels, and a webhook channel's
delivery receipts.

An ``api`` channel's caller authenticates with the channel's secret as a bearer token; a
``webhook`` channel's caller signs each request (``channels.webhook.signing``).
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from api.deps import DbId, Session, bearer_token, get_or_404, same_secret
from api.errors import ApiError
from channels.webhook.signing import BadSignature, verify
from core.inbound import InboundMessage, file_client_message
from core.models import Channel, Chat, Message

router = APIRouter(tags=["inbound"])

# Receipts move a message forward only, once the channel took it: sent -> delivered -> read.
RECEIPT_FROM = {"delivered": ("sent",), "read": ("sent", "delivered")}


class Accepted(BaseModel):
    dialog_id: int
    chat_id: int
    message_id: int
    duplicate: bool


class Receipts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message_ids: Annotated[list[DbId], Field(min_length=1, max_length=1000)]
    status: Literal["delivered", "read"]


class ReceiptsApplied(BaseModel):
    updated: int


def secrets_of(channel: Channel, now: datetime) -> list[str]:
    """The secrets that verify now: the current one and, during its grace, the previous."""
    until = channel.previous_secret_until
    if channel.previous_secret and until is not None and until.replace(tzinfo=UTC) > now:
        return [channel.secret, channel.previous_secret]
    return [channel.secret]


async def authenticated(request: Request, session: Session, channel_id: int) -> Channel:
    """The channel, if the request proves it comes from its side (401 otherwise)."""
    channel = await get_or_404(session, Channel, channel_id, "channel")
    if channel.type == "webhook":
        now = datetime.now(UTC)
        try:
            verify(request.headers, await request.body(), secrets_of(channel, now), now)
        except BadSignature as error:
            raise ApiError(401, f"bad signature: {error.reason}") from None
        return channel
    given = bearer_token(request, "channel secret")
    if not any(same_secret(given, s) for s in secrets_of(channel, datetime.now(UTC))):
        raise ApiError(401, "wrong channel secret", headers={"WWW-Authenticate": "Bearer"})
    return channel


@router.post("/v1/channels/{channel_id}/messages", status_code=202)
async def receive_message(
    channel_id: int,
    body: InboundMessage,
    request: Request,
    session: Session,
) -> Accepted:
    """File a client message. It is committed, with its outbox row, before this answers;
    the same ``message.external_id`` in the same chat again is answered with the first
    copy's ids and ``duplicate: true``."""
    channel = await authenticated(request, session, channel_id)
    if channel.type not in ("api", "webhook"):
        raise ApiError(
            409, f"channel {channel_id} is a '{channel.type}' channel: it has its own endpoint"
        )
    await session.close()  # filing takes its own transaction
    filed = await file_client_message(request.app.state.sessions, channel, body)
    return Accepted(**filed.__dict__)


@router.post("/v1/channels/{channel_id}/receipts")
async def receive_receipts(
    channel_id: int, body: Receipts, request: Request, session: Session
) -> ReceiptsApplied:
    """A webhook channel's receiver says messages reached the client, or were read; a
    message only moves forward, and only messages of this channel's chats move."""
    channel = await authenticated(request, session, channel_id)
    if channel.type != "webhook":
        raise ApiError(409, f"channel {channel_id} is a '{channel.type}' channel, not 'webhook'")
    of_this_channel = select(Chat.id).where(Chat.channel_id == channel.id)
    result = await session.execute(
        update(Message)
        .where(
            Message.id.in_(body.message_ids),
            Message.chat_id.in_(of_this_channel),
            Message.author != "client",
            Message.delivery_status.in_(RECEIPT_FROM[body.status]),
        )
        .values(delivery_status=body.status)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    return ReceiptsApplied(updated=result.rowcount or 0)  # type: ignore[attr-defined]
