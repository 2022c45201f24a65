"""CRM leads, the operator's lead request, and the paging and checks the CRM routes share.

Included by ``api/routes/crm.py`` (its module docstring has the roles). A lead made from a
dialog has that dialog's id; at most one per dialog. Asking for a dialog's lead answers it
(200) once it exists; before that the request is recorded once (an outbox row ``lead`` that
the worker turns into the lead) and answered 202, however often it is repeated.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api import schema_rules
from api.crm_access import actor, lead_filter
from api.deps import (
    Admin,
    Cursor,
    DbId,
    Name,
    NoNul,
    Principal,
    Reader,
    ReadSession,
    Session,
    get_or_404,
    require,
)
from api.errors import ApiError, conflict, invalid, missing
from api.pages import Limit, Page, next_cursor, page
from core.crm.models import Contact, Lead
from core.events.publish import record
from core.models import Dialog, Operator, Outbox

router = APIRouter(tags=["crm"])

Writer = Annotated[Principal, Depends(require("admin", "supervisor"))]
LeadStatus = Literal["new", "in_progress", "converted", "junk"]


def not_null(changes: dict[str, Any], *fields: str) -> None:
    """PATCH fields that may be left out but not set to null."""
    for field in fields:
        if field in changes and changes[field] is None:
            raise invalid(field, "may not be null")


async def check_operator(session: AsyncSession, operator_id: int | None, field: str) -> None:
    """A 422 naming ``field`` when it refers to an operator that does not exist."""
    if operator_id is not None and await session.get(Operator, operator_id) is None:
        raise missing(field, f"operator {operator_id} does not exist")


class LeadCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Name
    source: Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul] = "manual"
    contact_id: DbId | None = None
    responsible_id: DbId | None = None


class LeadUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable("title", "status")
    )
    title: Name | None = None
    status: LeadStatus | None = None
    responsible_id: DbId | None = None


class LeadOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    source: str
    status: str
    responsible_id: int | None
    contact_id: int | None
    dialog_id: int | None
    external_id: str | None
    # The conversation of the dialog the lead was made from, oldest message first.
    comments: str | None = None
    created_at: datetime
    updated_at: datetime


class LeadRequest(BaseModel):
    dialog_id: int
    lead: LeadOut | None
    requested: bool


@router.post("/v1/crm/leads", status_code=201)
async def create_lead(body: LeadCreate, session: Session, _: Writer) -> LeadOut:
    if body.contact_id is not None:
        contact = await session.get(Contact, body.contact_id)
        if contact is None:
            raise missing("contact_id", f"contact {body.contact_id} does not exist")
        if contact.merged_into_id is not None:  # it exists, but lives on in another one
            message = f"contact {contact.id} was merged into contact {contact.merged_into_id}"
            raise conflict("contact_id", message)
    await check_operator(session, body.responsible_id, "responsible_id")
    lead = Lead(**body.model_dump(), status="new")
    session.add(lead)
    await session.flush()
    operator_ids = [lead.responsible_id] if lead.responsible_id else []
    record(session, "lead.created", operator_ids=operator_ids, lead_id=lead.id, external_id=None)
    await session.commit()
    return LeadOut.model_validate(lead)


@router.get("/v1/crm/leads")
async def list_leads(
    session: ReadSession,
    principal: Reader,
    contact_id: DbId | None = None,
    dialog_id: DbId | None = None,
    status: LeadStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[LeadOut]:
    """Newest first (an operator's: of their own clients)."""
    query = select(Lead).where(await lead_filter(session, principal))
    if contact_id is not None:
        query = query.where(Lead.contact_id == contact_id)
    if dialog_id is not None:
        query = query.where(Lead.dialog_id == dialog_id)
    if status is not None:
        query = query.where(Lead.status == status)
    rows = list(await session.scalars(page(query, Lead, cursor, limit)))
    items = [LeadOut.model_validate(lead) for lead in rows[:limit]]
    return Page[LeadOut](items=items, next_cursor=next_cursor(rows, limit))


@router.get("/v1/crm/leads/{lead_id}")
async def get_lead(lead_id: int, session: ReadSession, principal: Reader) -> LeadOut:
    lead = await get_or_404(session, Lead, lead_id, "lead")
    seen = await session.scalar(
        select(Lead.id).where(Lead.id == lead_id, await lead_filter(session, principal))
    )
    if seen is None:  # not one of this operator's clients: as if it were not there
        raise ApiError(404, f"lead {lead_id} does not exist")
    return LeadOut.model_validate(lead)


@router.patch("/v1/crm/leads/{lead_id}")
async def update_lead(lead_id: int, body: LeadUpdate, session: Session, _: Writer) -> LeadOut:
    changes = body.model_dump(exclude_unset=True)
    not_null(changes, "title", "status")
    lead = await get_or_404(session, Lead, lead_id, "lead", lock=True)
    await check_operator(session, changes.get("responsible_id"), "responsible_id")
    for field, value in changes.items():
        setattr(lead, field, value)
    await session.commit()
    return LeadOut.model_validate(lead)


@router.delete("/v1/crm/leads/{lead_id}", status_code=204)
async def delete_lead(lead_id: int, session: Session, principal: Admin) -> None:
    """Admins only; an event names who. The dialog it came from stays asked-for: it gets no
    second lead by itself."""
    await session.delete(await get_or_404(session, Lead, lead_id, "lead"))
    record(session, "lead.deleted", lead_id=lead_id, by=actor(principal))
    await session.commit()


@router.post(
    "/v1/dialogs/{dialog_id}/crm/lead",
    responses={202: {"model": LeadRequest, "description": "The lead is asked for"}},
)
async def request_lead(
    dialog_id: int, session: Session, principal: Reader, response: Response
) -> LeadRequest:
    """The dialog's lead (200), or ask for one (202) once, however often this is repeated.

    For the dialog's operator, supervisors and admins: how a line with ``crm.create: none``
    gets leads, and how an operator makes sure a dialog has one.
    """
    dialog = await get_or_404(session, Dialog, dialog_id, "dialog")
    if principal.role == "operator" and (
        principal.operator_id is None or principal.operator_id != dialog.operator_id
    ):
        raise ApiError(403, f"dialog {dialog_id} is not this operator's")
    # FOR NO KEY UPDATE, like the workflow's activities: messages being filed need not wait.
    await session.refresh(dialog, with_for_update={"key_share": True})
    lead = await session.scalar(select(Lead).where(Lead.dialog_id == dialog.id))
    if lead is not None:
        await session.commit()
        out = LeadOut.model_validate(lead)
        return LeadRequest(dialog_id=dialog.id, lead=out, requested=dialog.lead_requested)
    if not dialog.lead_requested:
        dialog.lead_requested = True
        session.add(Outbox(kind="lead", dialog_id=dialog.id))
    await session.commit()
    response.status_code = 202
    return LeadRequest(dialog_id=dialog.id, lead=None, requested=True)
