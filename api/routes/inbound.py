"""Inbound client messages for ``api`` and ``webhook`` channels, and a webhook channel's
delivery receipts (each request proven by ``api.channel_auth``)."""

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from api.channel_auth import proven_channel
from api.deps import DbId, Session
from api.errors import ApiError
from channels import registry
from core.inbound import InboundMessage, file_client_message
from core.models import Chat, Message

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
    channel = await proven_channel(request, session, channel_id)
    if not registry.traits(channel.type).files_through_api:
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
    channel = await proven_channel(request, session, channel_id)
    if not registry.traits(channel.type).signed:
        raise ApiError(
            409, f"channel {channel_id} is a '{channel.type}' channel: receipts are for 'webhook'"
        )
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
