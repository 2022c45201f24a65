"""Which CRM records an operator may see: only those of their own clients.

An operator sees a contact when a dialog they hold, held, or are offered belongs to it, and
a lead when it is of such a dialog or such a contact. Admins and supervisors see everything.
A record an operator may not see is answered 404, as one that does not exist, so contact ids
and phone numbers cannot be probed.
"""

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from api.deps import Principal
from core.crm.models import Contact, Lead
from core.models import OPEN_DIALOG_STATUSES, Dialog


def sees_all(principal: Principal) -> bool:
    return principal.role in ("admin", "supervisor")


async def operator_dialog_ids(session: AsyncSession, operator_id: int) -> set[int]:
    """The dialogs the operator holds or held, and those offered to them now."""
    held = set(await session.scalars(select(Dialog.id).where(Dialog.operator_id == operator_id)))
    # ``offered_to`` is a JSON list: read the open dialogs' lists and look here.
    offered = await session.execute(
        select(Dialog.id, Dialog.offered_to).where(Dialog.status.in_(OPEN_DIALOG_STATUSES))
    )
    return held | {dialog_id for dialog_id, to in offered if operator_id in (to or [])}


async def operator_contact_ids(session: AsyncSession, operator_id: int) -> set[int]:
    """The contacts of the operator's dialogs (and those merged into them)."""
    return await _contacts_of(session, await operator_dialog_ids(session, operator_id))


async def _contacts_of(session: AsyncSession, dialogs: set[int]) -> set[int]:
    if not dialogs:
        return set()
    ids = set(
        await session.scalars(
            select(Dialog.contact_id).where(Dialog.id.in_(dialogs), Dialog.contact_id.is_not(None))
        )
    )
    merged = await session.scalars(select(Contact.id).where(Contact.merged_into_id.in_(ids)))
    return {i for i in ids if i is not None} | set(merged)


async def contact_filter(session: AsyncSession, principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on contacts for what the caller may see."""
    if sees_all(principal):
        return Contact.id.is_not(None)
    return Contact.id.in_(await operator_contact_ids(session, principal.operator_id or 0))


async def lead_filter(session: AsyncSession, principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on leads for what the caller may see."""
    if sees_all(principal):
        return Lead.id.is_not(None)
    dialogs = await operator_dialog_ids(session, principal.operator_id or 0)
    contacts = await _contacts_of(session, dialogs)
    return or_(Lead.dialog_id.in_(dialogs), Lead.contact_id.in_(contacts))


async def may_see_contact(session: AsyncSession, principal: Principal, contact_id: int) -> bool:
    if sees_all(principal):
        return True
    return contact_id in await operator_contact_ids(session, principal.operator_id or 0)


def actor(principal: Principal) -> str:
    """Who did it, as audit records name them."""
    if principal.operator_id is not None:
        return f"operator {principal.operator_id} ({principal.role} key {principal.key_id})"
    if principal.key_id is None:
        return "bootstrap admin key"
    return f"{principal.role} key {principal.key_id}"
