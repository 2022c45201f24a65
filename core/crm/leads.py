"""A dialog's lead after the dialog changes hands (``crm.transfer_changes_responsible``)."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.crm.models import Lead
from core.models import Dialog, Outbox


async def responsible_changed(session: AsyncSession, dialog: Dialog, operator_id: int) -> None:
    """A manual transfer: the lead this dialog created now belongs to the new operator.

    Leads and contacts that existed before the dialog keep their responsible. A lead kept in
    an external CRM is updated there by the worker (an outbox row, so it is never lost).
    """
    lead = await session.scalar(select(Lead).where(Lead.dialog_id == dialog.id))
    if lead is None or lead.responsible_id == operator_id:
        return
    lead.responsible_id = operator_id
    if lead.external_id is not None:
        session.add(Outbox(kind="lead_owner", dialog_id=dialog.id))
