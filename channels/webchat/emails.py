"""Emails to web chat visitors who left their address: the replies they did not read, and
the conversation's transcript when the dialog closes. Words by the line's ``language``.

A reply counts as read once the widget has shown it (the visitor's stream or message read
marks it ``read``). The worker sweeps every ``SWEEP_S``:

* replies (operator's or bot's) still unread ``OPENLINES_VISITOR_EMAIL_AFTER`` seconds after
  they were written, on an open dialog, go to the chat's email in one message per chat;
* a closed dialog's transcript (notes to operators left out) goes once.

A row is claimed (its ``emailed_at`` / ``transcript_sent_at`` set) before the email goes, so
two workers never send it twice; if the mail server refuses, the claim is undone and the
next sweep tries again. Without ``OPENLINES_SMTP_URL`` or ``OPENLINES_MAIL_DIR`` nothing is
swept.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import Update, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import mail
from core.backoff import Backoff
from core.config import Settings
from core.crm.identities import normalise_email
from core.line_settings import LineSettings
from core.models import Channel, Chat, Dialog, Line, Message

log = logging.getLogger("openlines.webchat.emails")

SWEEP_S = 15.0
REPLIES = ("operator", "bot")
TEXTS = {
    "en": {
        "reply_subject": "New reply from {line}",
        "reply_intro": "You have a reply in your chat with {line}:",
        "transcript_subject": "Your conversation with {line}",
        "transcript_intro": "Here is your conversation with {line}.",
        "you": "You",
        "outro": "To answer, open the chat on our site again.",
    },
    "ru": {
        "reply_subject": "Новый ответ: {line}",
        "reply_intro": "Вам ответили в чате «{line}»:",
        "transcript_subject": "Ваша переписка: {line}",
        "transcript_intro": "Ваша переписка в чате «{line}».",
        "you": "Вы",
        "outro": "Чтобы ответить, откройте чат на нашем сайте.",
    },
}


async def run(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, stop: asyncio.Event
) -> None:
    """Sweep until ``stop`` is set (nothing to do without a way to send mail)."""
    if not mail.configured(settings):
        return
    backoff = Backoff(log, "visitor emails", first_s=SWEEP_S, most_s=300.0)
    while not stop.is_set():
        try:
            await sweep(sessions, settings, datetime.now(UTC))
        except Exception as error:
            await backoff.failed(error)
            continue
        backoff.succeeded()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SWEEP_S)


async def sweep(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> int:
    """Send what is due now; the number of emails sent."""
    sent = 0
    for chat_id, message_ids in (await _unread_replies(sessions, settings, now)).items():
        sent += await _send_replies(sessions, settings, chat_id, message_ids, now)
    for dialog_id in await _closed_without_transcript(sessions):
        sent += await _send_transcript(sessions, settings, dialog_id, now)
    return sent


async def _unread_replies(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> dict[int, list[int]]:
    written_before = now - timedelta(seconds=settings.visitor_email_after)
    async with sessions() as session:
        rows = await session.execute(
            select(Message.chat_id, Message.id)
            .join(Chat, Chat.id == Message.chat_id)
            .join(Channel, Channel.id == Chat.channel_id)
            .join(Dialog, Dialog.id == Message.dialog_id)
            .where(
                Channel.type == "webchat",
                Chat.email.is_not(None),
                Message.author.in_(REPLIES),
                Message.delivery_status == "sent",
                Message.emailed_at.is_(None),
                Message.created_at <= written_before,
                Dialog.status.not_in(("closed", "spam")),  # the transcript will hold them
            )
            .order_by(Message.id)
        )
        due: dict[int, list[int]] = defaultdict(list)
        for chat_id, message_id in rows:
            due[chat_id].append(message_id)
        return due


async def _closed_without_transcript(sessions: async_sessionmaker[AsyncSession]) -> list[int]:
    async with sessions() as session:
        found = await session.scalars(
            select(Dialog.id)
            .join(Chat, Chat.id == Dialog.chat_id)
            .join(Channel, Channel.id == Chat.channel_id)
            .where(
                Channel.type == "webchat",
                Chat.email.is_not(None),
                Dialog.status == "closed",
                Dialog.transcript_sent_at.is_(None),
            )
            .order_by(Dialog.id)
        )
        return list(found)


async def _send_replies(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    chat_id: int,
    message_ids: list[int],
    now: datetime,
) -> int:
    async with sessions() as session, session.begin():
        claimed = await session.execute(
            update(Message)
            .where(Message.id.in_(message_ids), Message.emailed_at.is_(None))
            .values(emailed_at=now)
            .returning(Message.id)
        )
        ids = [row[0] for row in claimed]
        chat = await session.get(Chat, chat_id)
        messages = list(
            await session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id))
        )
        words, line_name = await _words(session, chat)
    address = normalise_email(chat.email or "") if chat else None
    if not messages or address is None:
        return 0
    body = [words["reply_intro"].format(line=line_name), ""]
    body += [message.text for message in messages] + ["", words["outro"]]
    email = _email(settings, address, words["reply_subject"].format(line=line_name), body)
    unclaim = update(Message).where(Message.id.in_(ids)).values(emailed_at=None)
    return await _send_or_unclaim(sessions, settings, email, unclaim, f"replies to chat {chat_id}")


async def _send_transcript(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, dialog_id: int, now: datetime
) -> int:
    async with sessions() as session, session.begin():
        claimed = await session.execute(
            update(Dialog)
            .where(Dialog.id == dialog_id, Dialog.transcript_sent_at.is_(None))
            .values(transcript_sent_at=now)
            .returning(Dialog.chat_id)
        )
        chat_id = claimed.scalar()
        if chat_id is None:
            return 0
        chat = await session.get(Chat, chat_id)
        messages = list(
            await session.scalars(
                select(Message)
                .where(Message.dialog_id == dialog_id, Message.author != "note")
                .order_by(Message.id)
            )
        )
        await session.execute(
            update(Message)
            .where(Message.dialog_id == dialog_id, Message.emailed_at.is_(None))
            .values(emailed_at=now)
        )
        words, line_name = await _words(session, chat)
    address = normalise_email(chat.email or "") if chat else None
    if address is None:
        return 0
    body = [words["transcript_intro"].format(line=line_name), ""]
    for message in messages:
        who = words["you"] if message.author == "client" else line_name
        body.append(f"{who}: {message.text}")
    body += ["", words["outro"]]
    email = _email(settings, address, words["transcript_subject"].format(line=line_name), body)
    unclaim = update(Dialog).where(Dialog.id == dialog_id).values(transcript_sent_at=None)
    what = f"transcript of dialog {dialog_id}"
    return await _send_or_unclaim(sessions, settings, email, unclaim, what)


async def _send_or_unclaim(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    email: EmailMessage,
    unclaim: Update,
    what: str,
) -> int:
    """Send the email (1), or, when the server refuses, undo the claim so the next sweep
    tries again (0)."""
    try:
        await mail.send(email, settings)
    except mail.MailFailed as error:
        log.warning("%s not emailed, will try again: %s", what, error)
        async with sessions() as session, session.begin():
            await session.execute(unclaim)
        return 0
    return 1


async def _words(session: AsyncSession, chat: Chat | None) -> tuple[dict[str, str], str]:
    """The texts in the line's language, and the name the visitor knows the line by."""
    line = await session.get(Line, chat.line_id) if chat else None
    settings = LineSettings.model_validate(line.settings) if line else LineSettings()
    return TEXTS.get(settings.language, TEXTS["en"]), settings.name or "Support"


def _email(settings: Settings, to: str, subject: str, lines: list[str]) -> EmailMessage:
    email = EmailMessage()
    email["From"] = settings.mail_from
    email["To"] = to
    email["Subject"] = subject
    email.set_content("\n".join(lines))
    return email
