"""Chat-bots: which dialogs a line's bot takes, and letting it go.

A line with ``bot.enabled`` hands a new dialog to its bot before the queue: every session
with ``bot.join: always``, only the chat's first with ``first``. The bot runs elsewhere and
acts through the API with a ``bot`` key; the dialog waits in status ``bot`` until the bot
hands it over (or ``bot.handover_after`` runs out) or closes it.
"""

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.line_settings import LineSettings
from core.models import Bot, Dialog


async def is_chats_first_dialog(session: AsyncSession, dialog: Dialog) -> bool:
    earlier = select(func.count(Dialog.id)).where(
        Dialog.chat_id == dialog.chat_id, Dialog.id < dialog.id
    )
    return (await session.scalar(earlier) or 0) == 0


async def taker(session: AsyncSession, dialog: Dialog, settings: LineSettings) -> int | None:
    """The bot that takes this new dialog, if the line's settings give it one."""
    bot = settings.bot
    if not bot.enabled or bot.bot_id is None:
        return None
    row = await session.get(Bot, bot.bot_id)
    if row is None or row.deleted_at is not None:
        return None
    if bot.join == "first" and not await is_chats_first_dialog(session, dialog):
        return None
    return row.id


def leaves(dialog: Dialog, settings: LineSettings) -> None:
    """The dialog goes to operators: the bot stays in it only with ``bot.leave: close``."""
    if settings.bot.leave != "close":
        dialog.bot_id = None
