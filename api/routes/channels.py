"""Channels: how clients reach a line. At most one live channel of each type per line.

A connector with connection hooks (telegram) registers the channel at its service while the
new row is flushed but not committed: the row's id is in the URL the service calls, and any
failure there leaves nothing saved.
"""

import logging
import math
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, AppSettings, DbId, Session, get_or_404
from api.errors import RETRY_AFTER_S, ApiError, invalid, validation_error
from api.routes.lines import load_line
from channels import registry
from channels.contract import Connect, ConnectFailed, Server
from channels.webhook.signing import ROTATION_GRACE
from core.config import Settings
from core.models import Channel, Line

router = APIRouter(tags=["channels"])
log = logging.getLogger("openlines.channels")
SERVICE_TIMEOUT_S = 15.0

ChannelType = Literal["api", "webchat", "telegram", "webhook"]


def _config_by_type(schema: dict[str, Any]) -> None:
    """The schema names, for each type that can be connected, the config it takes."""
    schema["oneOf"] = [
        {
            "properties": {
                "type": {"const": name},
                "config": connector.config_model.model_json_schema(),
            },
            "required": ["type", "config"]
            if connector.config_model.model_json_schema().get("required")
            else ["type"],
        }
        for name, connector in registry.CONNECTORS.items()
    ]


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_config_by_type)
    type: ChannelType
    config: dict[str, Any] = {}


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line_id: DbId


class ChannelOut(BaseModel):
    id: int
    line_id: int
    type: str
    config: dict[str, Any]
    snippet: str | None = Field(None, description="What to paste into a site (web chat)")
    created_at: datetime


class ChannelCreated(ChannelOut):
    secret: str


class ChannelRead(ChannelOut):
    """A channel with its state at its service (a telegram bot's webhook), when it has
    one; ``health`` is null with ``health_error`` saying why when the service did not say."""

    health: dict[str, Any] | None = None
    health_error: str | None = None


def _server(settings: Settings, http: httpx.AsyncClient, channel_id: int) -> Server:
    return Server(settings=settings, http=http, channel_id=channel_id)


def _refused(failure: ConnectFailed) -> ApiError:
    """The answer to a connection the channel's service refused or did not answer."""
    if failure.field is not None:
        return invalid(failure.field, failure.reason)
    return service_failed(failure, "the connection")


def service_failed(failure: ConnectFailed, what: str) -> ApiError:
    """503 with Retry-After when the channel's service is down, else 502: it refused."""
    if failure.unavailable:
        wait = math.ceil(failure.retry_after) if failure.retry_after else RETRY_AFTER_S
        return ApiError(
            503,
            f"the channel's service is unavailable, try again later: {failure.reason}",
            headers={"Retry-After": str(wait)},
        )
    return ApiError(502, f"the channel's service refused {what}: {failure.reason}")


def _out(channel: Channel, settings: Settings) -> dict[str, Any]:
    """The channel as reads show it: secrets in its config (a bot token) left out, and the
    snippet to paste for types shown on a site."""
    connector = registry.CONNECTORS.get(channel.type)
    hidden = connector.hidden_config if connector else frozenset()
    snippet = connector.snippet if connector else None
    return {
        "id": channel.id,
        "line_id": channel.line_id,
        "type": channel.type,
        "config": {k: v for k, v in channel.config.items() if k not in hidden},
        "snippet": snippet(channel.id, channel.config, settings) if snippet else None,
        "created_at": channel.created_at,
    }


async def _same_type_on(session: AsyncSession, line_id: int, channel_type: str) -> int | None:
    """The id of the line's live channel of this type, if it has one."""
    return await session.scalar(
        select(Channel.id).where(
            Channel.line_id == line_id, Channel.type == channel_type, Channel.deleted_at.is_(None)
        )
    )


@router.post("/v1/lines/{line_id}/channels", status_code=201)
async def create_channel(
    line_id: int, body: ChannelCreate, session: Session, settings: AppSettings, _: Admin
) -> ChannelCreated:
    """The answer holds the channel's secret, which authenticates its inbound calls."""
    await load_line(session, line_id)
    connector = registry.connector(body.type)
    try:
        config = connector.config_model.model_validate(body.config)
    except ValidationError as error:
        raise validation_error(error.errors(), prefix=("config",)) from None
    existing = await _same_type_on(session, line_id, body.type)
    conflict = ApiError(
        409,
        f"line {line_id} already has a '{body.type}' channel; a second one needs a line of its own",
    )
    if existing is not None:
        raise conflict
    if connector.connect is not None:
        await _not_connected_elsewhere(session, body.type, config.model_dump(mode="json"))
    channel = Channel(
        line_id=line_id,
        type=body.type,
        config=config.model_dump(mode="json"),
        secret=secrets.token_urlsafe(32),
    )
    session.add(channel)
    try:
        if connector.connect is not None:
            await session.flush()  # the id, for the URL the service will call
            channel.config = await _connect(connector.connect, config, settings, channel.id)
        await session.commit()
    except IntegrityError:  # a concurrent request created the same type first
        await session.rollback()
        raise conflict from None
    except BaseException:
        await session.rollback()  # nothing saved
        raise
    return ChannelCreated(**_out(channel, settings), secret=channel.secret)


async def _connect(
    connect: Connect, config: BaseModel, settings: Settings, channel_id: int
) -> dict[str, Any]:
    """Register the channel at its service; the config to store (or the error answer)."""
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S, follow_redirects=False) as http:
        try:
            stored: dict[str, Any] = await connect(config, _server(settings, http, channel_id))
        except ConnectFailed as failure:
            refused = _refused(failure)
        else:
            return stored
    raise refused


async def _not_connected_elsewhere(
    session: AsyncSession, channel_type: str, config: dict[str, Any]
) -> None:
    """A bot serves one channel: its webhook points at one URL (409 naming the token). A
    bot token starts with the bot's id, then a colon."""
    token = config.get("bot_token")
    if not isinstance(token, str):
        return
    bot = token.split(":", 1)[0]
    live = await session.execute(
        select(Channel.id, Channel.config).where(
            Channel.type == channel_type, Channel.deleted_at.is_(None)
        )
    )
    for channel_id, other in live:
        if str(other.get("bot_token", "")).split(":", 1)[0] == bot:
            message = f"this bot is connected already, as channel {channel_id}"
            raise ApiError(
                409,
                f"config.bot_token: {message}",
                [{"field": "config.bot_token", "message": message}],
            )


@router.get("/v1/lines/{line_id}/channels")
async def list_channels(
    line_id: int, session: Session, settings: AppSettings, _: Admin
) -> list[ChannelOut]:
    await load_line(session, line_id)
    channels = await session.scalars(
        select(Channel)
        .where(Channel.line_id == line_id, Channel.deleted_at.is_(None))
        .order_by(Channel.id)
    )
    return [ChannelOut(**_out(channel, settings)) for channel in channels]


@router.get("/v1/channels/{channel_id}")
async def get_channel(
    channel_id: int, session: Session, settings: AppSettings, _: Admin
) -> ChannelRead:
    """The channel; with ``health`` from its service for types registered at one."""
    channel = await get_or_404(session, Channel, channel_id, "channel")
    out = ChannelRead(**_out(channel, settings))
    connector = registry.CONNECTORS.get(channel.type)
    health = connector.health if connector is not None else None
    if health is None:
        return out
    config = dict(channel.config)
    await session.close()  # no transaction open while the service answers
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S, follow_redirects=False) as http:
        try:
            out.health = await health(config, _server(settings, http, channel_id))
        except ConnectFailed as failure:
            out.health_error = failure.reason
    return out


@router.delete("/v1/channels/{channel_id}", status_code=204)
async def delete_channel(
    channel_id: int, session: Session, settings: AppSettings, _: Admin
) -> None:
    """Delete the channel; one registered at a service is unregistered there, best effort
    (a failure is logged, and the channel is deleted all the same)."""
    channel = await get_or_404(session, Channel, channel_id, "channel")
    channel.deleted_at = datetime.now(UTC)
    config, channel_type = dict(channel.config), channel.type
    await session.commit()
    connector = registry.CONNECTORS.get(channel_type)
    if connector is None or connector.disconnect is None:
        return
    async with httpx.AsyncClient(timeout=SERVICE_TIMEOUT_S, follow_redirects=False) as http:
        try:
            await connector.disconnect(config, _server(settings, http, channel_id))
        except ConnectFailed as failure:  # best effort; the reason holds no secret
            log.warning("channel %s deleted; unregistering it failed: %s", channel_id, failure)
        except Exception as error:  # best effort; only the error's type is logged
            log.warning(
                "channel %s deleted; unregistering it failed: %s", channel_id, type(error).__name__
            )


@router.post("/v1/channels/{channel_id}/rotate-secret")
async def rotate_secret(
    channel_id: int, session: Session, settings: AppSettings, _: Admin
) -> ChannelCreated:
    """A new secret; the old one keeps signing and verifying for 24 h, so both sides can
    switch over."""
    channel = await get_or_404(session, Channel, channel_id, "channel", lock=True)
    channel.previous_secret = channel.secret
    channel.previous_secret_until = datetime.now(UTC) + ROTATION_GRACE
    channel.secret = secrets.token_urlsafe(32)
    await session.commit()
    return ChannelCreated(**_out(channel, settings), secret=channel.secret)


@router.patch("/v1/channels/{channel_id}")
async def update_channel(
    channel_id: int, body: ChannelUpdate, session: Session, settings: AppSettings, _: Admin
) -> ChannelOut:
    """Move the channel to another line: its open dialogs stay on the old line until they
    close, and its chats start their next dialog on the new one."""
    channel = await get_or_404(session, Channel, channel_id, "channel", lock=True)
    if body.line_id != channel.line_id:
        await _move(session, channel, body.line_id)
    return ChannelOut(**_out(channel, settings))


async def _move(session: AsyncSession, channel: Channel, line_id: int) -> None:
    """Commit the channel on ``line_id``: 404 naming ``line_id`` for a line that does not
    exist (like a transfer's), 409 naming the channel of the same type already there."""
    # Locked, so that a line deleted meanwhile cannot keep a live channel (see delete_line).
    line = await session.get(Line, line_id, with_for_update=True)
    if line is None or line.deleted_at is not None:
        message = f"line {line_id} does not exist"
        raise ApiError(404, f"line_id: {message}", [{"field": "line_id", "message": message}])
    taken_by = await _same_type_on(session, line_id, channel.type)
    if taken_by is None:
        channel.line_id = line_id
        try:
            await session.commit()
            return
        except IntegrityError:  # a channel of this type was connected there meanwhile
            await session.rollback()
            taken_by = await _same_type_on(session, line_id, channel.type)
    named = f" (channel {taken_by})" if taken_by is not None else ""
    raise ApiError(
        409,
        f"line {line_id} already has a '{channel.type}' channel{named}; "
        "a line holds one channel of each type",
    )
