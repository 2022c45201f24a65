"""Texts the service sends to a client on its own: welcome, notices, close and rating texts.

Each is stored in the dialog's history as a ``system`` message; for the ``api`` channel that
is the delivery (the client reads the dialog's messages). Every text has a key saying what
it answers, so an activity that runs twice sends it once.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
    return True
