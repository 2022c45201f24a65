"""Proof that a request comes from a channel's side: a signature or the channel secret.

A channel whose traits say ``signed`` (``webhook``) signs each request
(``channels.webhook.signing``); the others carry the channel secret as a bearer token.
Either way the previous secret still verifies during its grace after a rotation.
"""

from datetime import UTC, datetime

from fastapi import Request

from api.deps import bearer_token, same_secret
from api.errors import ApiError
from channels import registry
from channels.webhook.signing import BadSignature, live_secrets, verify
from core.models import Channel


def secrets_of(channel: Channel, now: datetime) -> list[str]:
    """The secrets that verify now: the current one and, during its grace, the previous."""
    return live_secrets(channel.secret, channel.previous_secret, channel.previous_secret_until, now)


async def prove_channel(request: Request, channel: Channel) -> None:
    """Raise 401 unless the request is signed by, or carries, one of the channel's secrets."""
    now = datetime.now(UTC)
    if registry.traits(channel.type).signed:
        try:
            verify(request.headers, await request.body(), secrets_of(channel, now), now)
        except BadSignature as error:
            raise ApiError(401, f"bad signature: {error.reason}") from None
        return
    given = bearer_token(request, "channel secret")
    if not any(same_secret(given, s) for s in secrets_of(channel, now)):
        raise ApiError(401, "wrong channel secret", headers={"WWW-Authenticate": "Bearer"})
