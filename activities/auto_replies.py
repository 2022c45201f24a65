"""The dialog workflow's automatic texts, closing and ratings.

The workflow decides when (its timers and its state); these activities read the line's
settings as they are now and say the words, so a settings change reaches an open dialog at
its next event. Each is one transaction and safe to run twice: every text is keyed by what it
answers (``core.outbound``), a consent by its message, a rating by its time.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from channels import registry
from core import bots, outbound, routing
from core.events.publish import record
from core.line_settings import LineSettings, RatingTexts, TextRatingTexts
from core.models import CLOSED_DIALOG_STATUSES, Agreement, Chat, Consent, Dialog, Line
from core.worktime import is_working_time
from workflows.models import (
    AutoText,
    ClientRating,
    ClientTurn,
    CloseRequest,
    Closing,
    Greeting,
    RatingOutcome,
)

# Sent when a rating comes after ``rating.time_limit``; the settings have no text for it.
RATING_TOO_LATE = "Sorry, the time to rate this dialog is over."


def rating_texts(dialog: Dialog, settings: LineSettings) -> RatingTexts | TextRatingTexts:
    """The web chat has like / dislike buttons; other channels answer ``1`` or ``0``."""
    if registry.traits(dialog.channel_type).rates_by_buttons:
        return settings.rating.widget_texts
    return settings.rating.text_texts


def mark_unanswered(session: AsyncSession, dialog: Dialog) -> None:
    """``no_answer.after`` is over and nobody accepted: the dialog is marked unanswered
    (until an accept or a reply), whether or not a text goes with the mark."""
    taken = dialog.operator_id is not None or dialog.status in CLOSED_DIALOG_STATUSES
    if dialog.unanswered or taken:
        return  # marked already (this activity ran before), or taken or ended meanwhile
    dialog.unanswered = True
    record(session, "dialog.unanswered", dialog_id=dialog.id, operator_ids=dialog.offered_to)


class AutoReplyActivities:
    """Activities of ``DialogWorkflow`` that talk to the client on the line's behalf."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def _dialog(
        self, dialog_id: int, lock_line: bool = False
    ) -> AsyncIterator[tuple[AsyncSession, Dialog, LineSettings]]:
        """A transaction with the dialog and its line's settings (the line locked if asked:
        what changes a dialog's load takes the routing lock)."""
        async with self._sessions() as session, session.begin():
            # FOR NO KEY UPDATE: a message being filed for the dialog (its foreign key takes
            # a key-share lock) must not wait for this, nor this for it.
            lock = False if lock_line else {"key_share": True}
            dialog = await session.get(Dialog, dialog_id, with_for_update=lock)
            if dialog is None:
                raise LookupError(f"dialog {dialog_id} does not exist")
            if lock_line:
                settings = await routing.lock_line(session, dialog.line_id)
                await session.refresh(dialog)
            else:
                line = await session.get(Line, dialog.line_id)
                assert line is not None
                settings = LineSettings.model_validate(line.settings)
            yield session, dialog, settings

    @activity.defn
    async def greet(self, turn: ClientTurn) -> Greeting:
        """New client messages: the welcome text, the agreement notice or the consent it
        waits for, and the off-hours text, each as the line's settings ask."""
        async with self._dialog(turn.dialog_id) as (session, dialog, settings):
            chat = await session.get(Chat, dialog.chat_id)
            assert chat is not None
            # Never when a chat-bot took the dialog: the bot greets in its own words.
            if turn.first and settings.welcome.enabled and dialog.status != "bot":
                if settings.welcome.each_session or await bots.is_chats_first_dialog(
                    session, dialog
                ):
                    await outbound.send_text(session, dialog, "welcome", settings.welcome.text)
            consent_pending = await _agreement(session, dialog, chat, settings, turn)
            off_hours_sent = turn.off_hours_sent
            if (
                not off_hours_sent
                and settings.worktime.enabled
                and settings.worktime.off_hours_action == "text"
                and not is_working_time(settings.worktime, turn.at)
            ):
                key = f"off_hours:{max(turn.message_ids)}"
                await outbound.send_text(session, dialog, key, settings.worktime.off_hours_text)
                off_hours_sent = True
            return Greeting(off_hours_sent=off_hours_sent, consent_pending=consent_pending)

    @activity.defn
    async def send_text(self, text: AutoText) -> bool:
        """The no-answer mark with its text, or the off-hours text when nobody is available;
        False when the line's settings now say to send nothing."""
        async with self._dialog(text.dialog_id) as (session, dialog, settings):
            if text.kind == "no_answer":
                mark_unanswered(session, dialog)
            if text.kind == "no_answer" and settings.no_answer.action == "text":
                words = settings.no_answer.text
            elif text.kind == "off_hours" and settings.worktime.off_hours_action == "text":
                words = settings.worktime.off_hours_text
            else:
                return False
            await outbound.send_text(session, dialog, f"{text.kind}:{text.at.isoformat()}", words)
            return True

    @activity.defn
    async def start_closing(self, request: CloseRequest) -> Closing:
        """The inactivity text (for an inactivity close), the close text and the rating
        request; the dialog stops counting toward its operator's limit.

        An inactivity close with ``inactivity.action: none`` sends nothing at all (the
        article: "close the dialog without any actions"), so it closes at once.
        """
        async with self._dialog(request.dialog_id, lock_line=True) as (session, dialog, settings):
            at = request.at.isoformat()
            silent = request.reason == "inactivity" and settings.inactivity.action == "none"
            idle_text = request.reason == "inactivity" and not silent
            if idle_text:
                text = settings.inactivity.text
                await outbound.send_text(session, dialog, f"inactivity:{at}", text)
            close_text = not silent and settings.close.action == "text"
            if close_text:
                await outbound.send_text(session, dialog, f"close:{at}", settings.close.text)
            rating_requested = (
                not silent and settings.rating.enabled and dialog.client_rating is None
            )
            if rating_requested:
                request_text = rating_texts(dialog, settings).request
                await outbound.send_text(session, dialog, f"rating_request:{at}", request_text)
                dialog.rating_requested_at = request.at
            sent = idle_text or close_text or rating_requested
            dialog.status = "closing"
            routing.leave_queue(dialog)
            await routing.serve_queue(session, dialog, settings, request.at)
            return Closing(
                rating_wait=settings.rating_wait if sent else 0,
                rating_requested=rating_requested,
                close_on_rating=settings.rating.close_on_rating,
            )

    @activity.defn
    async def record_rating(self, rating: ClientRating) -> RatingOutcome:
        """Record the client's like or dislike and thank them; after ``rating.time_limit``
        refuse it with a message."""
        assert rating.at is not None
        async with self._dialog(rating.dialog_id) as (session, dialog, settings):
            if dialog.client_rating is not None:
                retry = (dialog.client_rating, dialog.client_rated_at) == (rating.value, rating.at)
                return RatingOutcome(
                    recorded=retry,
                    reason="" if retry else f"dialog {dialog.id} is already rated",
                    close_on_rating=settings.rating.close_on_rating,
                )
            if dialog.rating_requested_at is None:
                return RatingOutcome(
                    recorded=False, reason=f"dialog {dialog.id} was not asked for a rating"
                )
            limit = settings.rating.time_limit
            if limit and rating.at > dialog.rating_requested_at + timedelta(seconds=limit):
                answering = rating.message_id or rating.at.isoformat()
                await outbound.send_text(
                    session, dialog, f"rating_too_late:{answering}", RATING_TOO_LATE
                )
                return RatingOutcome(
                    recorded=False, reason=f"the time to rate dialog {dialog.id} is over"
                )
            dialog.client_rating = rating.value
            dialog.client_rated_at = rating.at
            texts = rating_texts(dialog, settings)
            thanks = texts.like if rating.value == "like" else texts.dislike
            await outbound.send_text(session, dialog, "rating_answer", thanks)
            return RatingOutcome(recorded=True, close_on_rating=settings.rating.close_on_rating)


async def _agreement(
    session: AsyncSession, dialog: Dialog, chat: Chat, settings: LineSettings, turn: ClientTurn
) -> bool:
    """Send the personal-data notice to a client who has not consented, or record the
    consent it waits for; True while the client's answer is still awaited."""
    agreement_id = settings.agreement.agreement_id
    if not settings.agreement.required or agreement_id is None:
        return False
    if chat.consent_agreement_id == agreement_id and chat.consent_version is not None:
        answers = [i for i in sorted(turn.message_ids) if i > (chat.consent_after_message_id or 0)]
        if not answers:
            return True
        session.add(
            Consent(
                agreement_id=agreement_id,
                version=chat.consent_version,
                chat_id=chat.id,
                channel_id=chat.channel_id,
                channel_type=dialog.channel_type,
                dialog_id=dialog.id,
                message_id=answers[0],
            )
        )
        chat.consent_agreement_id = chat.consent_version = chat.consent_after_message_id = None
        return False
    consented = select(Consent.id).where(
        Consent.chat_id == chat.id, Consent.agreement_id == agreement_id
    )
    if not turn.first or await session.scalar(consented.limit(1)) is not None:
        return False
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        return False  # deleted since the line named it
    await outbound.send_text(session, dialog, f"agreement:{agreement.id}", agreement.text)
    chat.consent_agreement_id, chat.consent_version = agreement.id, agreement.version
    chat.consent_after_message_id = max(turn.message_ids)
    return True
