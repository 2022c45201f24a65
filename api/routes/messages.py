"""One message: send it to the client again through its channel."""

from fastapi import APIRouter

from api.deps import DialogReader, Session, get_or_404
from api.errors import ApiError
from api.routes.dialogs import MessageOut, visible_dialog
from channels import delivery, registry
from core.models import NOTE, Dialog, Message

router = APIRouter(tags=["messages"])


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
    return MessageOut.of(message)
