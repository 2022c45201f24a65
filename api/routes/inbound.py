"""Inbound client messages for `api` channels, authenticated by the channel's secret."""

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.deps import Session, bearer_token, get_or_404, same_secret
from api.errors import ApiError
from core.inbound import InboundMessage, file_client_message
from core.models import Channel

router = APIRouter(tags=["inbound"])


class Accepted(BaseModel):
    dialog_id: int
    chat_id: int
    message_id: int
    duplicate: bool


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
    channel = await get_or_404(session, Channel, channel_id, "channel")
    if not same_secret(bearer_token(request, "channel secret"), channel.secret):
        raise ApiError(401, "wrong channel secret", headers={"WWW-Authenticate": "Bearer"})
    if channel.type != "api":
        raise ApiError(409, f"channel {channel_id} is a '{channel.type}' channel, not 'api'")
    await session.close()  # filing takes its own transaction
    filed = await file_client_message(request.app.state.sessions, channel, body)
    return Accepted(**filed.__dict__)
