"""Filing a client message: chat, dialog, message and outbox row in one transaction.

Nothing is lost: the message and its outbox row are committed together before the API
answers, and the relay delivers the row to the dialog's workflow. A channel that sends the
same message twice (same ``external_id`` in the same chat) gets the first copy's ids back.
"""

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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


class InboundText(BaseModel):
    model_config = ConfigDict(extra="forbid")
    external_id: ExternalId
    text: Annotated[str, StringConstraints(min_length=1, max_length=10000)]


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
    if channel_type == "webchat":
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
    for _ in range(5):
        try:
            async with sessions() as session, session.begin():
                return await _file(session, channel, inbound)
        except IntegrityError:
            continue  # another request created the same chat or message first: look again
        except OperationalError as error:
            if not _is_deadlock(error):
                raise
            continue  # PostgreSQL broke a lock cycle with a workflow's transaction: again
    raise RuntimeError("could not file the message after repeated conflicts")


def _is_deadlock(error: OperationalError) -> bool:
    return type(error.orig).__name__ in ("DeadlockDetected", "SerializationFailure")


async def _file(session: AsyncSession, channel: Channel, inbound: InboundMessage) -> Filed:
    chat = await session.scalar(
        select(Chat)
        .where(Chat.channel_id == channel.id, Chat.external_id == inbound.chat.external_id)
        .with_for_update()  # one message of a chat at a time picks the chat's dialog
    )
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
    if dialog is None:
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
