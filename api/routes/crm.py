"""The built-in CRM: contacts and a contact's dialogs; leads and the operator's lead request
are in ``crm_leads`` and served through this module's router.

Roles: admins and supervisors read and change everything here; only admins delete contacts
and leads, and each deletion is an event naming who did it. Operators read the contacts,
leads and a contact's dialog list (summaries only; messages stay behind dialog visibility)
of their own clients only (``api.crm_access``: others are 404), may ask for a lead in a
dialog they own, and may merge two contacts of their own clients (``crm_merges``); they
change no other CRM record. Bots have no access.

Phones are kept in E.164 (read in the server's ``default_phone_region`` when written without
a country code) and emails case-folded, so a search finds a number however it is written.
A phone or email belongs to one contact: giving one that another contact has is a 409.
Contacts the chat tracker merged into another are left out of lists, show their
``merged_into_id`` when read by id, and cannot be changed (409).

Deleting a contact is refused (409) while leads name it: a lead is a sales record and would
lose its client. Otherwise its phones, emails and channel identities go with it, its chats
forget it and the name, phone and email they stored, and its dialogs forget it (the tracker
makes a new, empty contact at the client's next visit, from new messages only).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema
from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import schema_rules
from api.crm_access import actor, contact_filter, may_see_contact
from api.deps import (
    Admin,
    AppSettings,
    Cursor,
    DbId,
    Name,
    NoNul,
    Principal,
    Reader,
    ReadSession,
    Session,
    get_or_404,
)
from api.errors import ApiError, invalid
from api.pages import Limit, Page, next_cursor, page
from api.routes import crm_leads, crm_merges
from api.routes.crm_leads import Writer, check_operator, not_null
from core.crm.identities import normalise_email, normalise_phone
from core.crm.models import Contact, ContactIdentity, ContactMerge, Lead, live_contact
from core.crm.tracker import Identity, owners
from core.events.publish import record
from core.models import Chat, Dialog, Operator, utcnow

router = APIRouter(tags=["crm"])
router.include_router(crm_leads.router)
router.include_router(crm_merges.router)

# Kept as written until the handlers normalise them. "phone" is this API's own format: a
# number with its country code (+...), or national in OPENLINES_DEFAULT_PHONE_REGION.
PHONE_HELP = "A phone number: international (+44 20 7946 0958) or national in the default region"
Phone = Annotated[
    str,
    StringConstraints(max_length=64),
    NoNul,
    # The format says it all: a valid number is short and has no NUL.
    WithJsonSchema({"type": "string", "format": "phone", "description": PHONE_HELP}),
]
Email = Annotated[
    str, StringConstraints(max_length=320), NoNul, Field(json_schema_extra={"format": "email"})
]
Phones = Annotated[list[Phone], Field(max_length=20)]
Emails = Annotated[list[Email], Field(max_length=20)]


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    phones: Phones = []
    emails: Emails = []
    responsible_id: DbId | None = None


class ContactUpdate(BaseModel):
    """Given ``phones`` / ``emails`` replace the contact's; channel identities stay."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable("phones", "emails")
    )
    name: Name | None = None
    phones: Phones | None = None
    emails: Emails | None = None
    responsible_id: DbId | None = None


class OperatorRef(BaseModel):
    id: int
    name: str


class ChannelRef(BaseModel):
    channel_id: int
    external_id: str


class ContactOut(BaseModel):
    id: int
    name: str | None
    responsible_id: int | None
    responsible: OperatorRef | None
    phones: list[str]
    emails: list[str]
    channels: list[ChannelRef]
    merged_into_id: int | None
    created_at: datetime
    updated_at: datetime


class ContactDialog(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    line_id: int
    chat_id: int
    channel_type: str
    status: str
    operator_id: int | None
    started_at: datetime
    closed_at: datetime | None


def identities_of(body: ContactCreate | ContactUpdate, region: str) -> list[Identity]:
    """The body's phones and emails, normalised; 422 naming the first that is not one."""
    found: list[Identity] = []
    for i, raw in enumerate(body.phones or []):
        if (phone := normalise_phone(raw, region)) is None:
            raise invalid(f"phones[{i}]", f"'{raw}' is not a valid phone number")
        found.append(("phone", phone))
    for i, raw in enumerate(body.emails or []):
        if (email := normalise_email(raw)) is None:
            raise invalid(f"emails[{i}]", f"'{raw}' is not a valid email address")
        found.append(("email", email))
    return list(dict.fromkeys(found))


async def claim(session: AsyncSession, contact: Contact, wanted: list[Identity]) -> None:
    """Give ``contact`` these identities; 409 when another contact has one of them."""
    owned = await owners(session, wanted)
    for (kind, value), owner in owned.items():
        if owner != contact.id:
            raise ApiError(409, f"{kind} {value} belongs to contact {owner}")
    session.add_all(
        ContactIdentity(contact_id=contact.id, kind=kind, value=value)
        for kind, value in wanted
        if (kind, value) not in owned
    )


async def commit_claims(session: AsyncSession) -> None:
    """Commit; another request that took the same phone or email first makes this a 409."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise ApiError(409, "a phone or email was just given to another contact") from None


async def contacts_out(session: AsyncSession, contacts: list[Contact]) -> list[ContactOut]:
    """Contacts with their identities and responsible operators, in two queries."""
    ids = [c.id for c in contacts]
    found = await session.scalars(
        select(ContactIdentity)
        .where(ContactIdentity.contact_id.in_(ids))
        .order_by(ContactIdentity.id)
    )
    by_contact: dict[int, list[ContactIdentity]] = {i: [] for i in ids}
    for identity in found:
        by_contact[identity.contact_id].append(identity)
    wanted = {c.responsible_id for c in contacts if c.responsible_id is not None}
    operators = await session.scalars(select(Operator).where(Operator.id.in_(wanted)))
    names = {o.id: OperatorRef(id=o.id, name=o.name) for o in operators}
    out = []
    for contact in contacts:
        mine = by_contact[contact.id]
        channels = [i.value.partition(":") for i in mine if i.kind == "channel"]
        out.append(
            ContactOut(
                id=contact.id,
                name=contact.name,
                responsible_id=contact.responsible_id,
                responsible=names.get(contact.responsible_id or 0),
                phones=[i.value for i in mine if i.kind == "phone"],
                emails=[i.value for i in mine if i.kind == "email"],
                channels=[ChannelRef(channel_id=int(c), external_id=e) for c, _, e in channels],
                merged_into_id=contact.merged_into_id,
                created_at=contact.created_at,
                updated_at=contact.updated_at,
            )
        )
    return out


async def contact_out(session: AsyncSession, contact: Contact) -> ContactOut:
    return (await contacts_out(session, [contact]))[0]


async def changeable(session: AsyncSession, contact_id: int) -> Contact:
    contact = await get_or_404(session, Contact, contact_id, "contact", lock=True)
    if contact.merged_into_id is not None:
        raise ApiError(409, f"contact {contact_id} was merged into {contact.merged_into_id}")
    return contact


@router.post("/v1/crm/contacts", status_code=201)
async def create_contact(
    body: ContactCreate, session: Session, config: AppSettings, _: Writer
) -> ContactOut:
    wanted = identities_of(body, config.default_phone_region)
    await check_operator(session, body.responsible_id, "responsible_id")
    contact = Contact(name=body.name, responsible_id=body.responsible_id)
    session.add(contact)
    await session.flush()
    await claim(session, contact, wanted)
    await commit_claims(session)
    return await contact_out(session, contact)


@router.get("/v1/crm/contacts")
async def list_contacts(
    session: ReadSession,
    config: AppSettings,
    principal: Reader,
    phone: Annotated[Phone | None, Query(description=PHONE_HELP)] = None,
    email: Annotated[Email | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ContactOut]:
    """Newest first; ``phone`` and ``email`` find a contact however the value is written
    (an operator finds only their own clients)."""
    query = select(Contact).where(
        Contact.merged_into_id.is_(None), await contact_filter(session, principal)
    )
    for kind, raw, value in (
        ("phone", phone, phone and normalise_phone(phone, config.default_phone_region)),
        ("email", email, email and normalise_email(email)),
    ):
        if raw is None:
            continue
        if not value:
            raise invalid(kind, f"'{raw}' is not a valid {kind}")
        query = query.where(
            exists().where(
                ContactIdentity.contact_id == Contact.id,
                ContactIdentity.kind == kind,
                ContactIdentity.value == value,
            )
        )
    rows = list(await session.scalars(page(query, Contact, cursor, limit)))
    items = await contacts_out(session, rows[:limit])
    return Page[ContactOut](items=items, next_cursor=next_cursor(rows, limit))


@router.get("/v1/crm/contacts/{contact_id}")
async def get_contact(contact_id: int, session: ReadSession, principal: Reader) -> ContactOut:
    return await contact_out(session, await visible_contact(session, principal, contact_id))


async def visible_contact(session: AsyncSession, principal: Principal, contact_id: int) -> Contact:
    """The contact, if the caller may see it (404 otherwise, as for one that is not there)."""
    contact = await get_or_404(session, Contact, contact_id, "contact")
    if not await may_see_contact(session, principal, contact_id):
        raise ApiError(404, f"contact {contact_id} does not exist")
    return contact


@router.patch("/v1/crm/contacts/{contact_id}")
async def update_contact(
    contact_id: int, body: ContactUpdate, session: Session, config: AppSettings, _: Writer
) -> ContactOut:
    changes = body.model_dump(exclude_unset=True)
    not_null(changes, "phones", "emails")
    wanted = identities_of(body, config.default_phone_region)
    contact = await changeable(session, contact_id)
    if "responsible_id" in changes:
        await check_operator(session, body.responsible_id, "responsible_id")
        contact.responsible_id = body.responsible_id
    if "name" in changes:
        contact.name = body.name
    for kind in (k for k in ("phone", "email") if f"{k}s" in changes):
        keep = [value for k, value in wanted if k == kind]
        await session.execute(
            delete(ContactIdentity).where(
                ContactIdentity.contact_id == contact.id,
                ContactIdentity.kind == kind,
                ContactIdentity.value.not_in(keep),
            )
        )
    await claim(session, contact, wanted)
    contact.updated_at = utcnow()  # also when only its phones or emails changed
    await commit_claims(session)
    return await contact_out(session, contact)


@router.delete("/v1/crm/contacts/{contact_id}", status_code=204)
async def delete_contact(contact_id: int, session: Session, principal: Admin) -> None:
    contact = await get_or_404(session, Contact, contact_id, "contact", lock=True)
    merged = select(Contact.id).where(Contact.merged_into_id == contact.id)
    ids = [contact.id, *await session.scalars(merged)]
    lead = await session.scalar(select(Lead.id).where(Lead.contact_id.in_(ids)).limit(1))
    if lead is not None:
        raise ApiError(409, f"contact {contact_id} has leads (lead {lead}); delete them first")
    # The chats forget what they stored of the client too, or the tracker would rebuild the
    # contact from them at the next visit.
    await session.execute(
        update(Chat)
        .where(Chat.contact_id.in_(ids))
        .values(contact_id=None, name=None, phone=None, email=None)
    )
    await session.execute(update(Dialog).where(Dialog.contact_id.in_(ids)).values(contact_id=None))
    record(session, "contact.deleted", contact_id=contact.id, by=actor(principal))
    await session.execute(delete(ContactIdentity).where(ContactIdentity.contact_id.in_(ids)))
    # Its merge records go too: there is nothing left to undo.
    await session.execute(
        delete(ContactMerge).where(
            or_(ContactMerge.kept_id.in_(ids), ContactMerge.merged_id.in_(ids))
        )
    )
    await session.execute(delete(Contact).where(Contact.merged_into_id == contact.id))
    await session.delete(contact)
    await session.commit()


@router.get("/v1/crm/contacts/{contact_id}/dialogs")
async def contact_dialogs(
    contact_id: int,
    session: ReadSession,
    principal: Reader,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ContactDialog]:
    """Every dialog of the client on any channel and line, newest first (a merged contact's
    are its kept contact's)."""
    await visible_contact(session, principal, contact_id)
    contact = await live_contact(session, contact_id)
    assert contact is not None
    query = select(Dialog).where(Dialog.contact_id == contact.id)
    rows = list(await session.scalars(page(query, Dialog, cursor, limit)))
    items = [ContactDialog.model_validate(d) for d in rows[:limit]]
    return Page[ContactDialog](items=items, next_cursor=next_cursor(rows, limit))
