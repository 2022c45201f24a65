"""Proof that a request comes from a channel's side: a signature or the channel secret.

A channel whose traits say ``signed`` (``webhook``) signs each request
(``channels.webhook.signing``); the others carry the channel secret as a bearer token.
Either way the previous secret still verifies during its grace after a rotation.

These routes need no API key, so they answer every failure alike: an unknown or deleted
channel, a missing or wrong secret, a bad signature all get the same 401, and nobody can
learn which channel ids exist or what type they are. Why a request was refused is logged.
"""

import logging
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from api import rate_limit
from api.deps import get_or_none, given_bearer, same_secret
from api.errors import ApiError
from channels import registry
from channels.webchat import visitors
from channels.webhook.signing import BadSignature, live_secrets, verify
from core.models import Channel

log = logging.getLogger("openlines.api.channels")
DENIED = "unknown channel, or the request is not signed or authorized by it"


def denied() -> ApiError:
    """The one answer to a channel request that does not prove itself."""
    return ApiError(401, DENIED, headers={"WWW-Authenticate": "Bearer"})


def secrets_of(channel: Channel, now: datetime) -> list[str]:
    """The secrets that verify now: the current one and, during its grace, the previous."""
    return live_secrets(channel.secret, channel.previous_secret, channel.previous_secret_until, now)


async def proven_channel(request: Request, session: AsyncSession, channel_id: int) -> Channel:
    """The channel, if it exists and the request proves it comes from its side; within the
    per-IP and per-channel rate limits."""
    rate_limit.check_client_ip(request)
    channel = await get_or_none(session, Channel, channel_id)
    if channel is None or channel.deleted_at is not None:
        log.info("channel request refused: no channel %s", channel_id)
        raise denied()
    await prove_channel(request, channel)
    rate_limit.check(rate_limit.limits(request).per_channel, str(channel.id), "channel")
    return channel


async def prove_channel(request: Request, channel: Channel, chat: str | None = None) -> None:
    """Raise the 401 unless the request is signed by, or carries, one of the channel's
    live secrets (a deleted channel has none). On a web chat, the token of the visitor whose
    chat has external id ``chat`` proves it too."""
    now = datetime.now(UTC)
    live = secrets_of(channel, now)
    reason = None
    if channel.deleted_at is not None:
        reason = "the channel is deleted"
    elif registry.traits(channel.type).signed:
        try:
            verify(request.headers, await request.body(), live, now)
        except BadSignature as error:
            reason = f"bad signature: {error.reason}"
    else:
        given = given_bearer(request)
        if given is None or not (
            any(same_secret(given, s) for s in live)
            or (chat is not None and is_visitor_of(request, channel, chat))
        ):
            reason = "missing or wrong channel secret"
    if reason is not None:
        log.info("channel %s request refused: %s", channel.id, reason)
        raise denied()


def is_visitor_of(request: Request, channel: Channel, chat: str) -> bool:
    """The request carries the token of the web chat visitor whose chat has external id
    ``chat`` (on a channel whose clients have visitor tokens)."""
    token = given_bearer(request)
    if token is None or not registry.traits(channel.type).visitor_tokens:
        return False
    live = secrets_of(channel, datetime.now(UTC))
    return visitors.subject_of(token, live, channel.id) == chat
