"""Filing a client message: chat, dialog, message and outbox row in one transaction.

Nothing is lost: the message and its outbox row are committed together before the API
answers, and the relay delivers the row to the dialog's workflow. A channel that sends the
same message twice (same ``external_id`` in the same chat) gets the first copy's ids back.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels import registry
from core.events.publish import record
from core.models import CLOSED_DIALOG_STATUSES, Channel, Chat, Dialog, Message, Outbox
from workflows.models import RatingValue

ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class InboundChat(BaseModel):
    """The client as the channel knows it. Names and contacts update the chat when given."""

    model_config = ConfigDict(extra="forbid")
    external_id: ExternalId
    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None


class InboundAttachment(BaseModel):
    """A file the client sent, by reference: the channel keeps the file. ``ref`` is how the
    channel names it (a Telegram ``file_id``; for an ``api`` channel whatever its client
    gives, such as a URL of its own storage)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["photo", "document", "voice", "video"]
    ref: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    mime_type: Annotated[str, StringConstraints(max_length=127)] | None = None


class InboundText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: ExternalId
    # With attachments, a caption or a placeholder such as "[photo]".
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000)]
    attachments: Annotated[list[InboundAttachment], Field(max_length=10)] = []


class InboundMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chat: InboundChat
    message: InboundText


# Digits enough for a phone number, or an at sign: the chat tracker should read the text.
_CONTACT_HINT = re.compile(r"@|\d(?:[\s().-]*\d){6}")


def may_hold_contact(text: str) -> bool:
    """A cheap first look: might the text hold a phone number or an email?"""
    return _CONTACT_HINT.search(text) is not None


def message_created(
    session: AsyncSession, dialog: Dialog, message: Message, key: str | None = None
) -> None:
    """The ``message.created`` event, shown to whoever holds or is offered the dialog."""
    operator_ids = [dialog.operator_id] if dialog.operator_id else list(dialog.offered_to or [])
    record(
        session,
        "message.created",
        dialog_id=dialog.id,
        operator_ids=operator_ids,
        key=key,
        message_id=message.id,
        author=message.author,
    )


def rating_reply(channel_type: str, text: str) -> RatingValue | None:
    """A ``1`` (like) or ``0`` (dislike) is a rating reply on channels without buttons."""
    if registry.traits(channel_type).rates_by_buttons:
        return None
    ratings: dict[str, RatingValue] = {"1": "like", "0": "dislike"}
    return ratings.get(text.strip())


@dataclass(frozen=True)
class Filed:
    dialog_id: int
    chat_id: int
    message_id: int
    duplicate: bool


async def file_client_message(
    sessions: async_sessionmaker[AsyncSession], channel: Channel, inbound: InboundMessage
) -> Filed:
    """Commit the message (or find its earlier copy); concurrent senders retry on conflict."""
    filed = await _retrying(sessions, channel, inbound, button_rating=None)
    assert filed is not None
    return filed


async def file_button_rating(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    inbound: InboundMessage,
    rated_message_id: int | None = None,
) -> Filed | None:
    """A rating given with a button, filed as its ``1`` / ``0`` text reply would be (the
    same rating outbox row), but only while the chat's last dialog awaits a rating and, when
    ``rated_message_id`` is given, that message is of this dialog; None otherwise, storing
    nothing: a pressed button is never a message of its own."""
    if rating_reply(channel.type, inbound.message.text) is None:
        raise ValueError("a button rating's text is 1 or 0")
    return await _retrying(sessions, channel, inbound, button_rating=rated_message_id or 0)


async def edit_client_message(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    chat_external_id: str,
    message_external_id: str,
    text: str,
) -> int | None:
    """The client edited a message: its stored text becomes ``text``. The message's id, or
    None for a message never filed (nothing changes)."""
    async with sessions() as session, session.begin():
        message = await session.scalar(
            select(Message)
            .join(Chat, Chat.id == Message.chat_id)
            .where(
                Chat.channel_id == channel.id,
                Chat.external_id == chat_external_id,
                Message.external_id == message_external_id,
                Message.author == "client",
            )
            .with_for_update()
        )
        if message is None:
            return None
        message.text = text
        return message.id


async def _retrying(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    inbound: InboundMessage,
    button_rating: int | None,
) -> Filed | None:
    for _ in range(5):
        try:
            async with sessions() as session, session.begin():
                return await _file(session, channel, inbound, button_rating)
        except IntegrityError:
            continue  # another request created the same chat or message first: look again
        except OperationalError as error:
            if not _is_deadlock(error):
                raise
            continue  # PostgreSQL broke a lock cycle with a workflow's transaction: again
    raise RuntimeError("could not file the message after repeated conflicts")


def _is_deadlock(error: OperationalError) -> bool:
    return type(error.orig).__name__ in ("DeadlockDetected", "SerializationFailure")


async def _file(
    session: AsyncSession, channel: Channel, inbound: InboundMessage, button_rating: int | None
) -> Filed | None:
    """``button_rating`` not None: a button's rating (naming our message, or 0), filed only
    into the dialog awaiting it."""
    chat = await session.scalar(
        select(Chat)
        .where(Chat.channel_id == channel.id, Chat.external_id == inbound.chat.external_id)
        .with_for_update()  # one message of a chat at a time picks the chat's dialog
    )
    if chat is None and button_rating is not None:
        return None  # no chat, no dialog to rate
    if chat is None:
        chat = Chat(
            channel_id=channel.id, line_id=channel.line_id, external_id=inbound.chat.external_id
        )
        session.add(chat)
        await session.flush()
    for field in ("name", "phone", "email"):
        if (value := getattr(inbound.chat, field)) is not None:
            setattr(chat, field, value)

    earlier = await session.scalar(
        select(Message).where(
            Message.chat_id == chat.id, Message.external_id == inbound.message.external_id
        )
    )
    if earlier is not None:
        return Filed(earlier.dialog_id, chat.id, earlier.id, duplicate=True)

    dialog = await session.scalar(
        select(Dialog)
        .where(Dialog.chat_id == chat.id, Dialog.status.not_in(CLOSED_DIALOG_STATUSES))
        .order_by(Dialog.id.desc())
        .limit(1)
    )
    kind = "message"
    if dialog is None and rating_reply(channel.type, inbound.message.text):
        dialog = await _awaiting_rating(session, chat)
        kind = "message" if dialog is None else "rating"
    if button_rating is not None and not (
        _awaits_rating(dialog, kind) and await _of_dialog(session, button_rating, dialog)
    ):
        return None
    if dialog is None:
        # A new dialog starts on the channel's line now: a moved channel's chats follow it.
        chat.line_id = channel.line_id
        dialog = Dialog(
            line_id=channel.line_id, chat_id=chat.id, channel_type=channel.type, status="new"
        )
        session.add(dialog)
        await session.flush()
        record(
            session,
            "dialog.created",
            dialog_id=dialog.id,
            line_id=dialog.line_id,
            chat_id=chat.id,
            channel_type=channel.type,
        )
    message = Message(
        chat_id=chat.id,
        dialog_id=dialog.id,
        author="client",
        external_id=inbound.message.external_id,
        text=inbound.message.text,
        attachments=[a.model_dump(exclude_none=True) for a in inbound.message.attachments] or None,
    )
    session.add(message)
    await session.flush()
    session.add(Outbox(kind=kind, dialog_id=dialog.id, message_id=message.id))
    message_created(session, dialog, message)
    return Filed(dialog.id, chat.id, message.id, duplicate=False)


async def _awaiting_rating(session: AsyncSession, chat: Chat) -> Dialog | None:
    """The chat's last dialog, if it closed asking for a rating it has not had: a ``1`` or
    ``0`` now rates it (or is refused after the time limit) and starts no new dialog."""
    last = await session.scalar(
        select(Dialog).where(Dialog.chat_id == chat.id).order_by(Dialog.id.desc()).limit(1)
    )
    if last is None or last.status != "closed" or last.rating_requested_at is None:
        return None
    return last if last.client_rating is None else None


def _awaits_rating(dialog: Dialog | None, kind: str) -> bool:
    """The dialog a ``1`` / ``0`` now rates: one closing after asking for a rating (the
    dialog's run takes the reply as the rating), or a closed one still awaiting it."""
    if dialog is None:
        return False
    if kind == "rating":
        return True
    asked = dialog.rating_requested_at is not None and dialog.client_rating is None
    return dialog.status == "closing" and asked


async def _of_dialog(session: AsyncSession, message_id: int, dialog: Dialog | None) -> bool:
    """Whether our message ``message_id`` (0: none named) is of ``dialog``."""
    if dialog is None:
        return False
    if not message_id:
        return True
    found = await session.get(Message, message_id)
    return found is not None and found.dialog_id == dialog.id
