"""One message: send it to the client again through its channel; fetch a file the client
sent with it."""

from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from api.deps import DialogReader, Session, get_or_404
from api.errors import ApiError
from api.routes.channels import service_failed
from api.routes.dialogs import MessageOut, visible_dialog
from channels import delivery, registry
from channels.contract import ConnectFailed, Server
from core.config import Settings
from core.models import NOTE, Channel, Chat, Dialog, Message

router = APIRouter(tags=["messages"])
FETCH_TIMEOUT_S = 40.0


@router.post("/v1/messages/{message_id}/resend", status_code=202)
async def resend(message_id: int, session: Session, principal: DialogReader) -> MessageOut:
    """Deliver a message to the client again (it goes ``pending``, then ``sent`` or
    ``failed``), whatever its status: the client may have lost it. Only messages to the
    client, and only on channels openlines delivers to (409 otherwise)."""
    message = await get_or_404(session, Message, message_id, "message")
    dialog = await visible_dialog(session, principal, message.dialog_id)
    if message.author == "client":
        raise ApiError(409, f"message {message_id} is the client's own; nothing to send")
    if message.author == NOTE:
        raise ApiError(409, f"message {message_id} is a note for operators; nothing to send")
    if not registry.delivers(dialog.channel_type):
        raise ApiError(
            409,
            f"dialog {dialog.id} is on an '{dialog.channel_type}' channel, whose clients read "
            "messages through the API; nothing to send",
        )
    message = await get_or_404(session, Message, message_id, "message", lock=True)
    dialog = await get_or_404(session, Dialog, message.dialog_id, "dialog")
    message.delivery_status, message.delivery_error = None, None
    delivery.owe(session, dialog, message)
    await session.commit()
    return MessageOut.of(message, dialog.channel_type)


@router.get(
    "/v1/messages/{message_id}/attachments/{index}",
    response_class=Response,
    responses={200: {"content": {"*/*": {}}, "description": "The file, as its type"}},
)
async def attachment(
    message_id: int, index: int, request: Request, session: Session, principal: DialogReader
) -> Response:
    """The file of a message's attachment (``index`` from 0), fetched from the channel's
    service (a Telegram ``getFile``): its URL holds the bot's token, so openlines serves the
    bytes rather than pointing there. 409 for channels whose files it cannot fetch."""
    message = await get_or_404(session, Message, message_id, "message")
    dialog = await visible_dialog(session, principal, message.dialog_id)
    attachments = message.attachments or []
    if not 0 <= index < len(attachments):
        raise ApiError(404, f"message {message_id} has no attachment {index}")
    connector = registry.CONNECTORS.get(dialog.channel_type)
    if connector is None or connector.fetch_attachment is None:
        raise ApiError(
            409,
            f"dialog {dialog.id} is on an '{dialog.channel_type}' channel: its client keeps "
            f"the file, named by the attachment's ref",
        )
    channel = await session.scalar(
        select(Channel).join(Chat, Chat.channel_id == Channel.id).where(Chat.id == message.chat_id)
    )
    assert channel is not None
    settings: Settings = request.app.state.settings
    await session.close()  # no transaction open while the channel's service answers
    async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as http:
        server = Server(settings=settings, http=http, channel_id=channel.id)
        try:
            fetched = await connector.fetch_attachment(
                channel.config, str(attachments[index]["ref"]), server
            )
        except ConnectFailed as failure:
            raise service_failed(failure, "the file") from None
    given = attachments[index]
    name = quote(str(given.get("name") or f"{given['kind']}-{message_id}-{index}"))
    return Response(
        fetched.content,
        media_type=given.get("mime_type") or fetched.media_type or "application/octet-stream",
        # A download, never a page of this origin, whatever the client said it is.
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
        },
    )
