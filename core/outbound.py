"""Texts the service sends to a client on its own: welcome, notices, close and rating texts.

Each is stored in the dialog's history as a ``system`` message and owed to the client through
its channel (``channels.delivery``; for the ``api`` channel the stored message is the
delivery). Every text has a key saying what
it answers, so an activity that runs twice sends it once.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels import delivery
from core.inbound import message_created
from core.models import Dialog, Message


async def send_text(session: AsyncSession, dialog: Dialog, key: str, text: str) -> bool:
    """Send ``text`` to the dialog's client unless the text keyed ``key`` already went."""
    key = f"{dialog.id}:{key}"
    if await session.scalar(select(Message.id).where(Message.outbound_key == key)) is not None:
        return False
    message = Message(
        chat_id=dialog.chat_id,
        dialog_id=dialog.id,
        author="system",
        outbound_key=key,
        text=text,
    )
    session.add(message)
    await session.flush()
    message_created(session, dialog, message)
    delivery.owe(session, dialog, message)
    return True
