"""``POST /v1/dialogs/{id}/typing``: the web chat visitor (their visitor token) or the
dialog's operator (an API key) is typing. Nothing is stored; the signal goes to the open
streams through the ``TypingHub`` (``api.typing_hub``).

The widget sends it every few seconds while its visitor types, with the text so far; that
text reaches operators only on lines that ``watch_typing``. An operator's console sends it
without text: the visitor sees "<name> is typing". An empty ``text`` says typing stopped.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, StringConstraints

from api import rate_limit
from api.channel_auth import is_visitor_of
from api.deps import NoNul, Session, authenticate, get_or_none
from api.errors import ApiError
from api.routes.dialogs import visible_dialog
from api.typing_hub import MAX_TEXT, Typing, TypingHub
from channels.sender import sender_of
from core.line_settings import LineSettings
from core.models import Channel, Chat, Dialog, Line, Message

router = APIRouter(tags=["dialog actions"])


class TypingBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT), NoNul] = ""


@router.post("/v1/dialogs/{dialog_id}/typing", status_code=204)
async def typing(dialog_id: int, body: TypingBody, request: Request, session: Session) -> Response:
    """Someone types in the dialog: its web chat visitor, or an operator who may see it."""
    dialog = await get_or_none(session, Dialog, dialog_id)
    chat = await session.get(Chat, dialog.chat_id) if dialog else None
    channel = await session.get(Channel, chat.channel_id) if chat else None
    line = await session.get(Line, dialog.line_id) if dialog else None
    if dialog is None or chat is None or channel is None or line is None:
        await authenticate(request, session)  # without a key: the 401 a wrong one gets
        raise ApiError(404, f"dialog {dialog_id} does not exist")
    settings = LineSettings.model_validate(line.settings)
    now = datetime.now(UTC)
    if is_visitor_of(request, channel, chat.external_id):
        rate_limit.check_client_ip(request)
        signal = Typing(
            dialog_id=dialog.id,
            chat_id=chat.id,
            who="client",
            operator_ids=[dialog.operator_id] if dialog.operator_id else list(dialog.offered_to),
            text=body.text if settings.watch_typing else ("…" if body.text else ""),
            at=now,
        )
    else:
        principal = await authenticate(request, session)
        if principal.role not in ("admin", "supervisor", "operator"):
            raise ApiError(403, f"the {principal.role} role may not do this")
        await visible_dialog(session, principal, dialog_id)
        author = Message(author="operator", operator_id=principal.operator_id or dialog.operator_id)
        sender = await sender_of(session, author, dialog, settings)
        signal = Typing(
            dialog_id=dialog.id,
            chat_id=chat.id,
            who="operator",
            operator_ids=[],
            text="…" if body.text else "",
            name=sender.name,
            at=now,
        )
    await session.commit()
    hub: TypingHub = request.app.state.typing
    await hub.publish(signal)
    return Response(status_code=204)
