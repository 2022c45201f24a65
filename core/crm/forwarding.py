"""``crm.forward_to_responsible``: a known client's dialog goes first to their operator.

The contact's responsible operator is offered the dialog before the line's queue is, even
when they are not one of its members, if they are available (not fired, not on vacation,
workday started, online) and below the line's dialog limit. Otherwise, or once the offer
times out, the dialog takes its turn in the queue as any other.
"""

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core import routing
from core.crm.models import Contact
from core.events.publish import record
from core.line_settings import LineSettings
from core.models import Dialog, Operator


async def responsible_of(session: AsyncSession, dialog: Dialog) -> Operator | None:
    """The operator responsible for the dialog's contact, if it has both."""
    if dialog.contact_id is None:
        return None
    contact = await session.get(Contact, dialog.contact_id)
    if contact is None or contact.responsible_id is None:
        return None
    return await session.get(Operator, contact.responsible_id)


async def offer_to_responsible(
    session: AsyncSession, dialog: Dialog, settings: LineSettings, now: datetime
) -> bool:
    """Offer the waiting dialog to its client's responsible operator, if the line says so
    and they can take it now. Call with the line locked (``routing.lock_line``)."""
    crm = settings.crm
    if not (crm.enabled and crm.forward_to_responsible):
        return False
    operator = await responsible_of(session, dialog)
    if operator is None or not routing.is_available(operator, True, now):
        return False
    limit = settings.queue.max_dialogs_per_operator
    if limit and settings.queue.distribution != "all":  # `all` applies no limit
        loads = await routing.counted_loads(session, dialog.line_id, [operator.id], settings.queue)
        if loads.get(operator.id, 0) >= limit:
            return False
    dialog.offered_to = [operator.id]
    dialog.offered_at = now
    dialog.holder_id = operator.id
    dialog.last_offered_id = operator.id
    dialog.outside_queue = True  # the responsible keeps it whether or not a member
    operator.last_offered_at = now
    record(session, "dialog.offered", dialog_id=dialog.id, operator_ids=[operator.id])
    return True
