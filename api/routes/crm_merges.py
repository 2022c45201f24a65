"""Merging two contacts on someone's word, and undoing it (``core.crm.merges``).

Admins and supervisors merge any two contacts; an operator merges two contacts of their own
clients (``api.crm_access``). Whoever merged, a supervisor or an admin may undo it. Each
merge and undo is an event (``contact.merged``, ``contact.unmerged``) naming who did it.
"""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from api.crm_access import actor, may_see_contact
from api.deps import DbId, Reader, Session, get_or_404, get_or_none
from api.errors import ApiError, missing
from api.routes.crm_leads import Writer
from core.crm.merges import MergeRefused, merge, undo
from core.crm.models import Contact, ContactMerge
from core.events.publish import record

router = APIRouter(tags=["crm"])


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_id: DbId  # the contact that becomes a part of the one in the path


class MergeOut(BaseModel):
    id: int
    kept_id: int
    merged_id: int
    moved: dict[str, list[int]]
    took_over: dict[str, str | int]
    merged_by: str
    created_at: datetime
    undone_by: str | None
    undone_at: datetime | None

    @classmethod
    def of(cls, row: ContactMerge) -> "MergeOut":
        return cls(
            id=row.id,
            kept_id=row.kept_id,
            merged_id=row.merged_id,
            moved=row.moved,
            took_over=row.took_over,
            merged_by=row.merged_by,
            created_at=row.created_at,
            undone_by=row.undone_by,
            undone_at=row.undone_at,
        )


@router.post("/v1/crm/contacts/{contact_id}/merge")
async def merge_contacts(
    contact_id: int, body: MergeBody, session: Session, principal: Reader
) -> MergeOut:
    """Make contact ``body.contact_id`` a part of this one: its phones, emails, chats,
    dialogs and leads move here (409 when either is merged already)."""
    for wanted, field in ((contact_id, None), (body.contact_id, "contact_id")):
        found = await get_or_none(session, Contact, wanted)
        if found is None or not await may_see_contact(session, principal, wanted):
            if field:
                raise missing(field, f"contact {wanted} does not exist")
            raise ApiError(404, f"contact {wanted} does not exist")
    # Locked in id order, as the tracker locks contacts: two merges cannot deadlock.
    first, second = sorted((contact_id, body.contact_id))
    locked = {
        i: await get_or_404(session, Contact, i, "contact", lock=True) for i in (first, second)
    }
    try:
        row = await merge(session, locked[contact_id], locked[body.contact_id], actor(principal))
    except MergeRefused as refused:
        raise ApiError(409, refused.reason) from None
    record(
        session,
        "contact.merged",
        merge_id=row.id,
        contact_id=row.kept_id,
        merged_id=row.merged_id,
        by=row.merged_by,
    )
    await session.commit()
    return MergeOut.of(row)


@router.post("/v1/crm/merges/{merge_id}/undo")
async def undo_merge(merge_id: int, session: Session, principal: Writer) -> MergeOut:
    """Move back what the merge moved; the merged contact stands on its own again."""
    row = await get_or_404(session, ContactMerge, merge_id, "merge", lock=True)
    try:
        await undo(session, row, actor(principal))
    except MergeRefused as refused:
        raise ApiError(409, refused.reason) from None
    record(
        session,
        "contact.unmerged",
        merge_id=row.id,
        contact_id=row.kept_id,
        merged_id=row.merged_id,
        by=row.undone_by,
    )
    await session.commit()
    return MergeOut.of(row)
