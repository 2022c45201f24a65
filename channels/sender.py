"""Who the client sees as a message's sender, by the line's ``queue.operator_display``.

``profile``: the operator's own name, position and avatar; ``line``: the line's override for
that operator, else the profile; ``hidden``: the line's one hidden identity for every
operator, never the real one. Bots speak under their name, automatic texts under the line's.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from channels.contract import Sender
from core.line_settings import LineSettings
from core.models import Bot, Dialog, Message, Operator


async def sender_of(
    session: AsyncSession, message: Message, dialog: Dialog, settings: LineSettings
) -> Sender:
    """The sender the client sees for an outbound message."""
    line_name = settings.name or "Support"
    if message.author == "bot" and dialog.bot_id is not None:
        bot = await session.get(Bot, dialog.bot_id)
        return Sender(name=bot.name if bot else line_name)
    if message.author != "operator" or message.operator_id is None:
        return Sender(name=line_name)
    queue = settings.queue
    if queue.operator_display == "hidden":
        return Sender(**queue.hidden_identity.model_dump())
    override = queue.operator_overrides.get(str(message.operator_id))
    if queue.operator_display == "line" and override is not None:
        return Sender(
            name=override.name, avatar_url=override.avatar_url, position=override.position
        )
    operator = await session.get(Operator, message.operator_id)
    if operator is None:
        return Sender(name=line_name)
    return Sender(name=operator.name, avatar_url=operator.avatar_url, position=operator.position)
