"""The web chat's visitor routes, called by the widget's iframe (served by openlines, so
same-origin): ``/v1/webchat/{code}/...``.

``session`` gives the browser its visitor token (``channels.webchat.visitors``); the others
take it as ``Authorization: Bearer <token>``. A visitor writes (``POST messages``, each with
the widget's own id for it, so a resend after a network failure is stored once) and reads
their chat (``GET messages?after=``, the widget's catch-up after a reconnect). An unknown
code is 404; a missing or forged token 401. Like the channel endpoints they are rate-limited
per client address and per channel.
"""

import hmac
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import rate_limit, schema_rules
from api.channel_auth import secrets_of
from api.deps import MAX_ID, NoNul, ReadSession, Session, get_or_none, given_bearer
from api.errors import ApiError
from channels.contract import Sender
from channels.sender import sender_of
from channels.webchat import parse_code, visitors
from core.inbound import InboundChat, InboundMessage, InboundText, file_client_message
from core.line_settings import LineSettings
from core.models import Channel, Chat, Dialog, Line, Message

router = APIRouter(prefix="/v1/webchat/{code}", tags=["web chat"])

Code = Annotated[str, StringConstraints(max_length=64)]
PAGE = 100


class SessionBody(BaseModel):
    """What the widget knows when it opens: its stored token, and the identity the site
    vouches for (both ``identifier`` and ``identifier_hash``, or neither)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "dependentRequired": {
                "identifier": ["identifier_hash"],
                "identifier_hash": ["identifier"],
            }
        },
    )
    visitor_token: Annotated[str, StringConstraints(max_length=1000)] | None = None
    identifier: (
        Annotated[str, StringConstraints(min_length=1, max_length=visitors.MAX_IDENTIFIER), NoNul]
        | None
    ) = None
    identifier_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class WidgetLine(BaseModel):
    """What the widget shows of the line and the channel."""

    title: str
    colour: str
    position: Literal["right", "left"]
    language: str
    prechat_form: bool
    rating_texts: dict[str, str]


class SessionOut(BaseModel):
    visitor_token: str
    identified: bool
    line: WidgetLine


class VisitorMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable("name", "email", "phone")
    )
    # The widget's own id for the message: the same id again is the same message.
    client_message_id: Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul]
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000), NoNul]
    # The pre-chat form's answers (they update the chat, and the CRM tracker reads them).
    name: Annotated[str, StringConstraints(min_length=1, max_length=255), NoNul] | None = None
    email: Annotated[str, StringConstraints(max_length=320), NoNul] | None = None
    phone: Annotated[str, StringConstraints(max_length=64), NoNul] | None = None


class Written(BaseModel):
    message_id: int
    dialog_id: int
    duplicate: bool


class ChatMessage(BaseModel):
    id: int
    dialog_id: int
    author: Literal["client", "operator", "bot", "system"]
    text: str
    created_at: datetime
    client_message_id: str | None = None  # the visitor's own messages
    sender: Sender | None = None  # the others'
    rating_request: bool = False  # show like / dislike buttons for this dialog
    # An automatic text's kind: welcome, agreement (the consent notice: the visitor's next
    # message consents), rating_request, rating_answer, close, ...
    kind: str | None = None


class VisitorDialog(BaseModel):
    id: int
    status: str
    rating: str | None  # like or dislike, once given


class ChatPage(BaseModel):
    items: list[ChatMessage]
    dialog: VisitorDialog | None  # the chat's latest dialog


async def webchat_of(session: AsyncSession, request: Request, code: str) -> Channel:
    """The live web chat channel a widget code names (404 otherwise), within the limits."""
    rate_limit.check_client_ip(request)
    parsed = parse_code(code)
    channel = await get_or_none(session, Channel, parsed[0]) if parsed else None
    if (
        parsed is None
        or channel is None
        or channel.deleted_at is not None
        or channel.type != "webchat"
        or not hmac.compare_digest(str(channel.config.get("code", "")).encode(), parsed[1].encode())
    ):
        raise ApiError(404, "no web chat has this code")
    rate_limit.check(rate_limit.limits(request).per_channel, str(channel.id), "channel")
    return channel


def visitor_of(request: Request, channel: Channel) -> str:
    """The visitor the request's token names (401 without a valid one)."""
    token = given_bearer(request)
    subject = (
        visitors.subject_of(token, secrets_of(channel, datetime.now(UTC)), channel.id)
        if token
        else None
    )
    if subject is None:
        raise ApiError(401, "a visitor token from this web chat's session is required")
    return subject


async def widget_line(session: AsyncSession, channel: Channel) -> WidgetLine:
    line = await session.get(Line, channel.line_id)
    assert line is not None
    settings = LineSettings.model_validate(line.settings)
    config = channel.config
    return WidgetLine(
        title=config.get("title") or settings.name or "Support",
        colour=config["colour"],
        position=config["position"],
        language=settings.language,
        prechat_form=config["prechat_form"],
        rating_texts=settings.rating.widget_texts.model_dump(),
    )


@router.post("/session")
async def open_session(
    code: Code, body: SessionBody, request: Request, session: ReadSession
) -> SessionOut:
    """The visitor's token: for the identity the site vouches for, else the stored one,
    else a new visitor's. An identified visitor's token is kept only while the site still
    vouches for the same identity (on a shared computer the next person is someone else)."""
    channel = await webchat_of(session, request, code)
    live = secrets_of(channel, datetime.now(UTC))
    if body.identifier is not None and body.identifier_hash is not None:
        if not visitors.identity_holds(live, body.identifier, body.identifier_hash):
            raise ApiError(
                403,
                "identifier_hash is not the HMAC-SHA256 of identifier with the channel secret",
                [{"field": "identifier_hash", "message": "does not match identifier"}],
            )
        subject = visitors.identified_subject(body.identifier)
    else:
        given = body.visitor_token
        kept = visitors.subject_of(given, live, channel.id) if given else None
        subject = kept if kept and kept.startswith("v:") else visitors.anonymous_subject()
    return SessionOut(
        visitor_token=visitors.token_for(channel.secret, channel.id, subject),
        identified=subject.startswith("id:"),
        line=await widget_line(session, channel),
    )


@router.post("/messages", status_code=202)
async def write(code: Code, body: VisitorMessage, request: Request, session: Session) -> Written:
    """File the visitor's message like any channel's; committed before this answers."""
    channel = await webchat_of(session, request, code)
    subject = visitor_of(request, channel)
    await session.close()  # filing takes its own transaction
    inbound = InboundMessage(
        chat=InboundChat(external_id=subject, name=body.name, email=body.email, phone=body.phone),
        message=InboundText(external_id=body.client_message_id, text=body.text),
    )
    filed = await file_client_message(request.app.state.sessions, channel, inbound)
    return Written(
        message_id=filed.message_id, dialog_id=filed.dialog_id, duplicate=filed.duplicate
    )


@router.get("/messages")
async def read(
    code: Code,
    request: Request,
    session: ReadSession,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="The last message id shown")] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE)] = PAGE,
) -> ChatPage:
    """The visitor's messages after ``after``, oldest first (notes to operators left out),
    and the state of their latest dialog."""
    channel = await webchat_of(session, request, code)
    chat = await visitor_chat(session, channel, visitor_of(request, channel))
    page = await chat_page(session, chat, after, limit)
    if chat is not None and page.items:
        await mark_read(request.app.state.sessions, chat.id, page.items[-1].id)
    return page


async def mark_read(sessions: async_sessionmaker[AsyncSession], chat_id: int, upto: int) -> None:
    """The widget showed the chat's messages up to ``upto``: they are read, so none of them
    is emailed to the visitor (``channels.webchat.emails``)."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Message)
            .where(
                Message.chat_id == chat_id,
                Message.id <= upto,
                Message.author != "client",
                Message.delivery_status == "sent",
            )
            .values(delivery_status="read")
        )


async def visitor_chat(session: AsyncSession, channel: Channel, subject: str) -> Chat | None:
    """The visitor's chat, once they wrote."""
    return await session.scalar(
        select(Chat).where(Chat.channel_id == channel.id, Chat.external_id == subject)
    )


async def chat_page(session: AsyncSession, chat: Chat | None, after: int, limit: int) -> ChatPage:
    """The chat's messages after ``after`` (notes to operators left out) and its latest
    dialog."""
    if chat is None:
        return ChatPage(items=[], dialog=None)
    rows = await session.scalars(
        select(Message)
        .where(Message.chat_id == chat.id, Message.id > after, Message.author != "note")
        .order_by(Message.id)
        .limit(limit)
    )
    items = [await chat_message(session, message) for message in rows]
    latest = await session.scalar(
        select(Dialog).where(Dialog.chat_id == chat.id).order_by(Dialog.id.desc()).limit(1)
    )
    dialog = None
    if latest is not None:
        dialog = VisitorDialog(id=latest.id, status=latest.status, rating=latest.client_rating)
    return ChatPage(items=items, dialog=dialog)


async def chat_message(session: AsyncSession, message: Message) -> ChatMessage:
    """A message as the widget shows it: the sender by the line's display rules."""
    fields: dict[str, Any] = {
        "id": message.id,
        "dialog_id": message.dialog_id,
        "author": message.author,
        "text": message.text,
        "created_at": message.created_at,
    }
    if message.author == "client":
        return ChatMessage(**fields, client_message_id=message.external_id)
    dialog = await session.get(Dialog, message.dialog_id)
    line = await session.get(Line, dialog.line_id) if dialog else None
    assert dialog is not None and line is not None
    sender = await sender_of(session, message, dialog, LineSettings.model_validate(line.settings))
    key = message.outbound_key or ""
    kind = key.split(":")[1] if key.count(":") >= 1 else None
    return ChatMessage(
        **fields, sender=sender, rating_request=kind == "rating_request", kind=kind or None
    )
