"""A dialog's lead: how it is made, and what happens to it when the dialog changes hands."""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.crm.models import Contact, Lead
from core.events.publish import record
from core.line_settings import Crm
from core.models import Chat, Dialog, Outbox


def title(chat: Chat, dialog: Dialog) -> str:
    return f"{chat.name or 'Client'} — {dialog.channel_type} dialog {dialog.id}"[:255]


def source(crm: Crm, dialog: Dialog) -> str:
    """``crm.lead_source``: ``channel`` means the dialog's channel type."""
    return dialog.channel_type if crm.lead_source == "channel" else crm.lead_source


def responsible(dialog: Dialog, contact: Contact | None) -> int | None:
    """The dialog's operator, else the contact's responsible operator."""
    return dialog.operator_id or (contact.responsible_id if contact else None)


async def add(
    session: AsyncSession,
    dialog: Dialog,
    contact: Contact | None,
    lead_title: str,
    lead_source: str,
    external_id: str | None = None,
) -> Lead:
    """The dialog's lead row and its ``lead.created`` event (the row is unique per dialog:
    a second insert fails the transaction)."""
    owner = responsible(dialog, contact)
    lead = Lead(
        title=lead_title,
        source=lead_source,
        responsible_id=owner,
        contact_id=contact.id if contact else None,
        dialog_id=dialog.id,
        external_id=external_id,
    )
    session.add(lead)
    await session.flush()
    record(
        session,
        "lead.created",
        dialog_id=dialog.id,
        operator_ids=[owner] if owner is not None else [],
        lead_id=lead.id,
        external_id=external_id,
    )
    return lead


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
