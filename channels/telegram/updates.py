"""Reading a Telegram webhook Update into what the telegram channel acts on.

Only the fields used are modelled; anything else Telegram sends is ignored, so new Bot API
fields do not break parsing. Only private chats are served: a bot added to a group or a
channel gets their updates too, and those are ``ignored`` (with the reason), as are update
types the webhook was not asked for and messages holding nothing we can show.
"""

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.inbound import InboundAttachment, InboundChat, InboundMessage, InboundText

Kind = Literal["message", "edited_message", "rating", "ignored"]
AttachmentKind = Literal["photo", "document", "voice", "video"]
Rating = Literal["like", "dislike"]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TEXT_MAX = 10000
"""``InboundText.text``'s limit: longer texts are cut (Telegram's own limit is lower)."""
NAME_MAX = 255
PHONE_MAX = 64


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class User(_Model):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None


class Chat(_Model):
    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


class PhotoSize(_Model):
    file_id: str
    width: int = 0
    height: int = 0
    file_size: int | None = None


class File(_Model):
    """A document, voice message or video."""

    file_id: str
    file_name: str | None = None
    mime_type: str | None = None


class Contact(_Model):
    phone_number: str
    first_name: str = ""
    last_name: str | None = None
    user_id: int | None = None


class Message(_Model):
    message_id: int
    from_user: User | None = Field(default=None, alias="from")
    chat: Chat
    date: int = 0
    edit_date: int | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[PhotoSize] | None = None
    document: File | None = None
    voice: File | None = None
    video: File | None = None
    contact: Contact | None = None


class CallbackMessage(_Model):
    """The message a pressed button was on; possibly inaccessible (then ``date`` is 0)."""

    message_id: int
    chat: Chat


class CallbackQuery(_Model):
    id: str
    from_user: User = Field(alias="from")
    message: CallbackMessage | None = None
    data: str | None = None


class Update(_Model):
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    callback_query: CallbackQuery | None = None


@dataclass(frozen=True)
class Attachment:
    kind: AttachmentKind
    file_id: str
    name: str | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class Incoming:
    """One update, as the channel acts on it.

    ``message_id`` is Telegram's id of the message (for a rating: of the message holding
    the buttons); ``rated_message_id`` is our message id the rating request named.
    ``callback_query_id`` is set for every callback query, a rating or not, so that it can
    be answered (the client's app shows a spinner until it is).
    """

    update_id: int
    kind: Kind
    chat_id: str | None = None
    name: str | None = None
    message_id: str | None = None
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    phone: str | None = None
    edit_date: int | None = None
    rating: Rating | None = None
    rated_message_id: str | None = None
    callback_query_id: str | None = None
    ignored_reason: str | None = None


def secret_matches(expected: str, header: str | None) -> bool:
    """Whether the ``X-Telegram-Bot-Api-Secret-Token`` header is the webhook's secret."""
    return bool(expected) and header is not None and hmac.compare_digest(expected, header)


def parse_update(payload: Mapping[str, Any] | str | bytes) -> Incoming:
    """The update as an ``Incoming``; ``ValueError`` (pydantic's) for a body that is not
    an Update at all."""
    if isinstance(payload, str | bytes):
        update = Update.model_validate_json(payload)
    else:
        update = Update.model_validate(payload)
    if update.message is not None:
        return _message(update.update_id, "message", update.message)
    if update.edited_message is not None:
        return _message(update.update_id, "edited_message", update.edited_message)
    if update.callback_query is not None:
        return _callback(update.update_id, update.callback_query)
    return Incoming(update.update_id, "ignored", ignored_reason="update type not handled")


def _name(*people: User | Chat | None) -> str | None:
    """First and last name, else the username, of the first that has one."""
    for person in people:
        if person is None:
            continue
        full = " ".join(" ".join(filter(None, (person.first_name, person.last_name))).split())
        if full or person.username:
            return full or person.username
    return None


def _phone(message: Message) -> str | None:
    """The sender's own phone, from a contact they shared; never someone else's."""
    contact = message.contact
    sender = message.from_user
    if contact is None or sender is None or contact.user_id != sender.id:
        return None
    phone = "".join(contact.phone_number.split())
    # Telegram gives a user's own number in international form, often without the plus.
    return f"+{phone}" if phone.isdigit() else phone or None


def _attachments(message: Message) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    if message.photo:
        largest = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        found.append(Attachment("photo", largest.file_id))
    for kind, file in (
        ("document", message.document),
        ("voice", message.voice),
        ("video", message.video),
    ):
        if file is not None:
            found.append(Attachment(kind, file.file_id, file.file_name, file.mime_type))  # type: ignore[arg-type]
    return tuple(found)


def _text(message: Message, attachments: tuple[Attachment, ...]) -> str:
    """The text, else the caption, else a placeholder naming what was sent."""
    if message.text or message.caption:
        return message.text or message.caption or ""
    if message.contact is not None:
        contact = message.contact
        who = " ".join(filter(None, (contact.first_name.strip(), contact.last_name)))
        return f"[contact: {', '.join(filter(None, (who, contact.phone_number)))}]"
    return " ".join(f"[{a.kind}]" for a in attachments)


def _message(update_id: int, kind: Kind, message: Message) -> Incoming:
    chat = message.chat
    if chat.type != "private":
        return Incoming(update_id, "ignored", str(chat.id), ignored_reason=f"{chat.type} chat")
    attachments = _attachments(message)
    text = _text(message, attachments)
    if not text.strip():
        return Incoming(
            update_id, "ignored", str(chat.id), ignored_reason="no text or supported attachment"
        )
    return Incoming(
        update_id,
        kind,
        chat_id=str(chat.id),
        name=_name(message.from_user, chat),
        message_id=str(message.message_id),
        text=text,
        attachments=attachments,
        phone=_phone(message),
        edit_date=message.edit_date,
    )


def _rating(data: str | None) -> tuple[Rating, str] | None:
    """``rating:<like|dislike>:<message id>`` read, or None."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != "rating" or not parts[2].isdigit():
        return None
    if parts[1] == "like":
        return "like", parts[2]
    if parts[1] == "dislike":
        return "dislike", parts[2]
    return None


def _callback(update_id: int, query: CallbackQuery) -> Incoming:
    chat = query.message.chat if query.message is not None else None
    # Without the message, the private chat's id is the user's id.
    chat_id = str(chat.id if chat is not None else query.from_user.id)
    common: dict[str, Any] = {
        "chat_id": chat_id,
        "name": _name(query.from_user, chat),
        "message_id": str(query.message.message_id) if query.message is not None else None,
        "callback_query_id": query.id,
    }
    if chat is not None and chat.type != "private":
        return Incoming(update_id, "ignored", ignored_reason=f"{chat.type} chat", **common)
    rating = _rating(query.data)
    if rating is None:
        return Incoming(update_id, "ignored", ignored_reason="not a rating button", **common)
    return Incoming(update_id, "rating", rating=rating[0], rated_message_id=rating[1], **common)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def to_inbound(incoming: Incoming) -> InboundMessage:
    """The client's message for filing: chat external id = chat id, message external id =
    message id, the sender's name and own phone; texts cut to the model's limits."""
    if incoming.kind != "message" or incoming.chat_id is None or incoming.message_id is None:
        raise ValueError(f"not a client message: {incoming.kind}")
    phone = incoming.phone if incoming.phone and len(incoming.phone) <= PHONE_MAX else None
    return InboundMessage(
        chat=InboundChat(
            external_id=incoming.chat_id,
            name=_cut(incoming.name, NAME_MAX) if incoming.name else None,
            phone=phone,
        ),
        message=InboundText(
            external_id=incoming.message_id,
            text=_cut(incoming.text, TEXT_MAX),
            attachments=[
                InboundAttachment(
                    kind=a.kind,
                    ref=a.file_id,
                    name=_cut(a.name, NAME_MAX) if a.name else None,
                    mime_type=a.mime_type if a.mime_type and len(a.mime_type) <= 127 else None,
                )
                for a in incoming.attachments
            ],
        ),
    )
