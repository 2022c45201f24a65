"""A dialog's lead: how it is made, and what happens to it when the dialog changes hands."""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.crm.models import Contact, Lead, live_contact
from core.events.publish import record
from core.line_settings import Crm
from core.models import Chat, Dialog, Outbox

# The conversation a lead carries is bounded, so a long dialog makes no huge request: its
# last HISTORY_MESSAGES messages, each cut at HISTORY_MESSAGE_CHARS, the oldest of them left
# out too while the whole would pass HISTORY_CHARS.
HISTORY_MESSAGES = 50
HISTORY_MESSAGE_CHARS = 1000
HISTORY_CHARS = 8000
AUTHORS = {"operator": "operator", "bot": "bot", "system": "automatic text"}


@dataclass(frozen=True)
class Said:
    """One message of a dialog as its lead shows it: when, who (a name or a role), what."""

    at: datetime
    who: str
    text: str


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
    comments: str | None = None,
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
        comments=comments,
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
    if lead is not None and lead.responsible_id != operator_id:
        _assign(session, lead, operator_id)


async def first_owner(session: AsyncSession, dialog: Dialog, operator_id: int | None) -> None:
    """The dialog's first owner (its first accept, or a transfer or interception before any)
    becomes responsible for the dialog's lead and for its client, where nobody is yet.

    Call in the transaction that gives the dialog its first owner: later owners change
    nothing here (only a transfer may, through ``responsible_changed``).
    """
    if operator_id is None:
        return
    lead = await session.scalar(select(Lead).where(Lead.dialog_id == dialog.id))
    if lead is not None and lead.responsible_id is None:
        _assign(session, lead, operator_id)
    contact = (
        await live_contact(session, dialog.contact_id, lock=True) if dialog.contact_id else None
    )
    if contact is not None and contact.responsible_id is None:
        contact.responsible_id = operator_id


def _assign(session: AsyncSession, lead: Lead, operator_id: int) -> None:
    """Make the operator responsible for the lead, in the external CRM too (by the worker:
    an outbox row ``lead_owner``, so it is never lost)."""
    lead.responsible_id = operator_id
    if lead.external_id is not None:
        session.add(Outbox(kind="lead_owner", dialog_id=lead.dialog_id))


def speaker(author: str, client: str, operator: str | None) -> str:
    """Who wrote a message, as the lead's history names them."""
    if author == "client":
        return client
    if author == "operator" and operator:
        return f"{operator} (operator)"
    return AUTHORS.get(author, author)


def history(said: list[Said], total: int) -> str:
    """The conversation as a lead carries it, oldest first, a line a message (``[time UTC]
    who: text``): the newest messages within the bounds; ``total`` is how many the dialog
    has, so the text says how many earlier ones it leaves out."""
    lines = [_line(m) for m in said[-HISTORY_MESSAGES:]]
    while len(lines) > 1 and sum(len(line) + 1 for line in lines) > HISTORY_CHARS:
        lines.pop(0)
    left_out = total - len(lines)
    if left_out > 0:
        lines.insert(0, f"({left_out} earlier messages left out)")
    return "\n".join(lines)


def _line(said: Said) -> str:
    """One message on its line (its own line breaks indented), its text cut to the bound."""
    at = said.at if said.at.tzinfo else said.at.replace(tzinfo=UTC)
    text = said.text.replace("\r\n", "\n").replace("\n", "\n    ")[:HISTORY_MESSAGE_CHARS]
    return f"[{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC] {said.who}: {text}"
