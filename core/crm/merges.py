"""Merging two contacts into one, on an operator's word, and undoing it.

The chat tracker links a new chat to at most one existing contact and never merges two: a
client's message may name anybody's phone or email. When two contacts are one person, an
operator (or a supervisor, or an admin) says so through the API. The merge moves the merged
contact's identities, chats, dialogs and leads to the kept one, points the merged contact
(and any merged into it before) at the kept one, and lets the kept contact take the merged
one's name and responsible where it has none. Its row records each moved id and what was
taken over, so an undo moves exactly those back (rows added to the kept contact since stay).
"""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.crm.models import Contact, ContactIdentity, ContactMerge, Lead
from core.models import Chat, Dialog

# What moves with a contact, by the key its ids are recorded under.
MOVING: dict[str, Any] = {
    "identities": ContactIdentity,
    "chats": Chat,
    "dialogs": Dialog,
    "leads": Lead,
}


class MergeRefused(Exception):
    """The merge or undo cannot be done as asked; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def merge(session: AsyncSession, kept: Contact, merged: Contact, by: str) -> ContactMerge:
    """Make ``merged`` a part of ``kept`` (both live and locked by the caller)."""
    if kept.id == merged.id:
        raise MergeRefused("a contact cannot be merged into itself")
    if kept.merged_into_id is not None or merged.merged_into_id is not None:
        raise MergeRefused("only contacts that are not merged already can be merged")
    moved: dict[str, list[int]] = {}
    for name, model in MOVING.items():
        ids = list(await session.scalars(select(model.id).where(model.contact_id == merged.id)))
        moved[name] = ids
        if ids:
            await _point(session, model, ids, kept.id)
    earlier = list(
        await session.scalars(select(Contact.id).where(Contact.merged_into_id == merged.id))
    )
    moved["contacts"] = earlier
    if earlier:  # contacts merged into ``merged`` before now point at ``kept`` directly
        await session.execute(
            update(Contact)
            .where(Contact.id.in_(earlier))
            .values(merged_into_id=kept.id)
            .execution_options(synchronize_session="fetch")
        )
    merged.merged_into_id = kept.id
    took_over: dict[str, Any] = {}
    if kept.name is None and merged.name is not None:
        kept.name = took_over["name"] = merged.name
    if kept.responsible_id is None and merged.responsible_id is not None:
        kept.responsible_id = took_over["responsible_id"] = merged.responsible_id
    row = ContactMerge(
        kept_id=kept.id, merged_id=merged.id, moved=moved, took_over=took_over, merged_by=by
    )
    session.add(row)
    await session.flush()
    return row


async def undo(session: AsyncSession, row: ContactMerge, by: str) -> None:
    """Move back what the merge moved (the caller locked the row); refused when undone
    already, or when the kept contact has been merged into another since (undo that first)."""
    if row.undone_at is not None:
        raise MergeRefused(f"merge {row.id} was undone already")
    kept = await session.get(Contact, row.kept_id, with_for_update=True)
    merged = await session.get(Contact, row.merged_id, with_for_update=True)
    assert kept is not None and merged is not None
    if kept.merged_into_id is not None:
        raise MergeRefused(
            f"contact {kept.id} has been merged into contact {kept.merged_into_id} since; "
            "undo that merge first"
        )
    for name, model in MOVING.items():
        ids = row.moved.get(name, [])
        if ids:  # only those still on the kept contact (a deleted lead is gone)
            await _point(session, model, ids, merged.id, only_from=kept.id)
    if earlier := row.moved.get("contacts", []):
        await session.execute(
            update(Contact)
            .where(Contact.id.in_(earlier), Contact.merged_into_id == kept.id)
            .values(merged_into_id=merged.id)
            .execution_options(synchronize_session="fetch")
        )
    merged.merged_into_id = None
    if "name" in row.took_over and kept.name == row.took_over["name"]:
        kept.name = None
    if "responsible_id" in row.took_over and kept.responsible_id == row.took_over["responsible_id"]:
        kept.responsible_id = None
    row.undone_at, row.undone_by = datetime.now(UTC), by


async def _point(
    session: AsyncSession, model: Any, ids: list[int], contact_id: int, only_from: int | None = None
) -> None:
    statement = update(model).where(model.id.in_(ids))
    if only_from is not None:
        statement = statement.where(model.contact_id == only_from)
    await session.execute(
        statement.values(contact_id=contact_id).execution_options(synchronize_session="fetch")
    )
