"""Channels: how clients reach a line. At most one live channel of each type per line."""

import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.deps import Admin, Session, get_or_404
from api.errors import ApiError, invalid
from api.routes.lines import load_line
from core.models import Channel

router = APIRouter(tags=["channels"])

ChannelType = Literal["api", "webchat", "telegram", "webhook"]
# Types whose connector exists; the others are refused until their connector lands.
AVAILABLE_TYPES = ("api",)


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: ChannelType
    config: dict[str, Any] = {}


class ChannelOut(BaseModel):
    id: int
    line_id: int
    type: str
    config: dict[str, Any]
    created_at: datetime


class ChannelCreated(ChannelOut):
    secret: str


def _out(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "line_id": channel.line_id,
        "type": channel.type,
        "config": channel.config,
        "created_at": channel.created_at,
    }


@router.post("/v1/lines/{line_id}/channels", status_code=201)
async def create_channel(
    line_id: int, body: ChannelCreate, session: Session, _: Admin
) -> ChannelCreated:
    """The answer holds the channel's secret, which authenticates its inbound calls."""
    await load_line(session, line_id)
    if body.type not in AVAILABLE_TYPES:
        raise invalid(
            "type",
            f"channel type '{body.type}' is not available yet; use one of {list(AVAILABLE_TYPES)}",
        )
    if body.config:
        raise invalid(
            f"config.{next(iter(body.config))}", f"unknown setting for a '{body.type}' channel"
        )
    existing = await session.scalar(
        select(Channel.id).where(
            Channel.line_id == line_id, Channel.type == body.type, Channel.deleted_at.is_(None)
        )
    )
    conflict = ApiError(
        409,
        f"line {line_id} already has a '{body.type}' channel; a second one needs a line of its own",
    )
    if existing is not None:
        raise conflict
    channel = Channel(
        line_id=line_id, type=body.type, config=body.config, secret=secrets.token_urlsafe(32)
    )
    session.add(channel)
    try:
        await session.commit()
    except IntegrityError:  # a concurrent request created the same type first
        raise conflict from None
    return ChannelCreated(**_out(channel), secret=channel.secret)


@router.get("/v1/lines/{line_id}/channels")
async def list_channels(line_id: int, session: Session, _: Admin) -> list[ChannelOut]:
    await load_line(session, line_id)
    channels = await session.scalars(
        select(Channel)
        .where(Channel.line_id == line_id, Channel.deleted_at.is_(None))
        .order_by(Channel.id)
    )
    return [ChannelOut(**_out(channel)) for channel in channels]


@router.delete("/v1/channels/{channel_id}", status_code=204)
async def delete_channel(channel_id: int, session: Session, _: Admin) -> None:
    channel = await get_or_404(session, Channel, channel_id, "channel")
    channel.deleted_at = datetime.now(UTC)
    await session.commit()
