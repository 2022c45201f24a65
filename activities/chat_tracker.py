"""The chat tracker as an activity of the dialog workflow.

The workflow calls it (as a local activity) on a dialog's first message and on messages that
may carry a phone or email. Each call is one transaction and safe to run twice: identities
already on the contact are not added again, and ``dialog.lead_requested`` guards the lead.
"""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core.crm import tracker
from core.line_settings import LineSettings
from core.models import CLOSED_DIALOG_STATUSES, Chat, Dialog, Line, Message
from workflows.models import ClientTurn, Tracked

# A race on an identity (two chats of one new client at once) is settled by running the
# transaction again; more conflicts than this in a row are left to Temporal's retries.
ATTEMPTS = 5


def _is_conflict(error: OperationalError) -> bool:
    """PostgreSQL broke a lock cycle (two merges of the same contacts in other orders)."""
    return type(error.orig).__name__ in ("DeadlockDetected", "SerializationFailure")


class ChatTrackerActivities:
    """Recognises the client of a dialog's new messages in the CRM."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        default_region: str,
        builtin_crm: bool = False,
    ) -> None:
        self._sessions = sessions
        self._default_region = default_region
        # The built-in CRM's leads are rows here: the tracker adds them itself.
        self._lead_here = builtin_crm

    @activity.defn
    async def track(self, turn: ClientTurn) -> Tracked:
        """Link the dialog and its chat to the client's contact, merging contacts that turn
        out to be one person, and owe the dialog a lead when the line's CRM settings say so."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._track(turn)
            except IntegrityError:
                if attempt == ATTEMPTS:
                    raise
            except OperationalError as error:
                if attempt == ATTEMPTS or not _is_conflict(error):
                    raise
        raise AssertionError("unreachable")

    async def _track(self, turn: ClientTurn) -> Tracked:
        async with self._sessions() as session, session.begin():
            # FOR NO KEY UPDATE: the tracker runs one at a time per dialog, while messages
            # being filed for it (their foreign key takes a key-share lock) need not wait.
            dialog = await session.get(Dialog, turn.dialog_id, with_for_update={"key_share": True})
            if dialog is None:
                raise LookupError(f"dialog {turn.dialog_id} does not exist")
            if dialog.status in CLOSED_DIALOG_STATUSES:  # a run for a dialog that has ended
                return Tracked()
            chat = await session.get(Chat, dialog.chat_id)
            line = await session.get(Line, dialog.line_id)
            assert chat is not None and line is not None
            settings = LineSettings.model_validate(line.settings)
            texts = await session.scalars(
                select(Message.text)
                .where(
                    Message.id.in_(turn.message_ids),
                    Message.dialog_id == dialog.id,
                    Message.author == "client",
                )
                .order_by(Message.id)
            )
            return await tracker.track(
                session,
                dialog,
                chat,
                settings,
                list(texts),
                turn.first,
                self._default_region,
                self._lead_here,
            )
