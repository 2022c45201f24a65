"""Chat-bots: which dialogs a line's bot takes, and letting it go.

A line with ``bot.enabled`` hands a new dialog to its bot before the queue: every session
with ``bot.join: always``, only the chat's first with ``first``. The bot runs elsewhere and
acts through the API with a ``bot`` key; the dialog waits in status ``bot`` until the bot
hands it over (or ``bot.handover_after`` runs out) or closes it.
"""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.line_settings import LineSettings
from core.models import MAX_ID, Bot, Dialog


async def live_bot(session: AsyncSession, bot_id: int, share_lock: bool = False) -> bool:
    """Whether the bot exists and is not deleted.

    ``share_lock``: keep it so until the transaction ends (PostgreSQL ``FOR SHARE``), so a
    line cannot take on a bot that a concurrent ``DELETE`` is removing.
    """
    if not 1 <= bot_id <= MAX_ID:
        return False
    query = select(Bot.id).where(Bot.id == bot_id, Bot.deleted_at.is_(None))
    if share_lock:
        query = query.with_for_update(read=True)
    return await session.scalar(query) is not None


async def is_chats_first_dialog(session: AsyncSession, dialog: Dialog) -> bool:
    earlier = select(func.count(Dialog.id)).where(
        Dialog.chat_id == dialog.chat_id, Dialog.id < dialog.id
    )
    return (await session.scalar(earlier) or 0) == 0


async def taker(session: AsyncSession, dialog: Dialog, settings: LineSettings) -> int | None:
    """The bot that takes this new dialog, if the line's settings give it one."""
    bot = settings.bot
    if not bot.enabled or bot.bot_id is None or not await live_bot(session, bot.bot_id):
        return None
    if bot.join == "first" and not await is_chats_first_dialog(session, dialog):
        return None
    return bot.bot_id


def leaves(dialog: Dialog, settings: LineSettings) -> None:
    """The dialog goes to operators: the bot stays in it only with ``bot.leave: close``."""
    if settings.bot.leave != "close":
        dialog.bot_id = None
