"""CRM tables: a contact, the identities that recognise it, and leads."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.models import Base, utcnow

# A chain of merges longer than this is a bug (merges re-point older pointers), not data.
MAX_MERGE_HOPS = 32


class Contact(Base):
    """A client as the CRM knows them, whichever channels they write from."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # The operator who looks after this client (``crm.forward_to_responsible``).
    responsible_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL")
    )
    # The contact was merged into another one; its identities and chats moved there.
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


async def live_contact(
    session: AsyncSession, contact_id: int, lock: bool = False
) -> Contact | None:
    """The contact, or the one it was merged into (``lock``: locked, read fresh)."""
    for _ in range(MAX_MERGE_HOPS):
        contact = await session.get(
            Contact,
            contact_id,
            with_for_update={"key_share": True} if lock else None,
            populate_existing=lock,
        )
        if contact is None or contact.merged_into_id is None:
            return contact
        contact_id = contact.merged_into_id
    raise RuntimeError(f"contact {contact_id} is merged in a loop")


class ContactIdentity(Base):
    """One way to recognise a contact: a phone (E.164), an email (case-folded) or a channel
    identity (``<channel_id>:<external_id>``). Each value belongs to one contact."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_identities_kind_value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # phone | email | channel
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lead(Base):
    """A sales lead; at most one per dialog (the dialog that created it)."""

    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_contact", "contact_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="new")
    responsible_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    dialog_id: Mapped[int | None] = mapped_column(ForeignKey("dialogs.id"), unique=True)
    # The lead's id in an external CRM (Bitrix24), when that is the CRM in use.
    external_id: Mapped[str | None] = mapped_column(String(64))
    # The conversation of the dialog it was made from (``leads.history``: bounded).
    comments: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ContactMerge(Base):
    """Two contacts made one on someone's word (``core.crm.merges``), with what moved, so
    the merge can be undone."""

    __tablename__ = "contact_merges"
    __table_args__ = (
        Index("ix_contact_merges_kept", "kept_id"),
        Index("ix_contact_merges_merged", "merged_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kept_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    merged_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    # Ids that moved to the kept contact, by table: identities, chats, dialogs, leads, and
    # contacts merged into the merged one before (their pointer moved).
    moved: Mapped[dict[str, list[int]]] = mapped_column(JSON)
    # What the kept contact took over from the merged one where it had none: name, responsible.
    took_over: Mapped[dict[str, Any]] = mapped_column(JSON)
    merged_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_by: Mapped[str | None] = mapped_column(String(64))
    undone_at: Mapped[datetime | None]
