"""Personal-data agreements: each text change is a new version; consents name the version."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import delete, func, select

from api.deps import MAX_ID, Admin, NoNul, Principal, Reader, Session, get_or_404, require
from api.errors import ApiError
from core.models import Agreement, AgreementVersion, Consent, Line

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), NoNul]
Text = Annotated[str, StringConstraints(min_length=1, max_length=20000), NoNul]
Supervisor = Annotated[Principal, Depends(require("admin", "supervisor"))]


class AgreementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    text: Text


class AgreementUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    text: Text | None = None


class AgreementOut(BaseModel):
    id: int
    name: str
    text: str
    version: int
    created_at: datetime
    updated_at: datetime


class VersionOut(BaseModel):
    version: int
    text: str
    created_at: datetime


class ConsentOut(BaseModel):
    id: int
    agreement_id: int
    version: int
    chat_id: int
    channel_id: int
    channel_type: str
    dialog_id: int
    message_id: int
    created_at: datetime


def agreement_out(agreement: Agreement) -> AgreementOut:
    return AgreementOut.model_validate(agreement, from_attributes=True)


@router.post("", status_code=201)
async def create_agreement(body: AgreementCreate, session: Session, _: Admin) -> AgreementOut:
    agreement = Agreement(name=body.name, text=body.text, version=1)
    session.add(agreement)
    await session.flush()
    session.add(AgreementVersion(agreement_id=agreement.id, version=1, text=body.text))
    await session.commit()
    return agreement_out(agreement)


@router.get("")
async def list_agreements(session: Session, _: Reader) -> list[AgreementOut]:
    agreements = await session.scalars(select(Agreement).order_by(Agreement.id))
    return [agreement_out(a) for a in agreements]


@router.get("/{agreement_id}")
async def get_agreement(agreement_id: int, session: Session, _: Reader) -> AgreementOut:
    return agreement_out(await get_or_404(session, Agreement, agreement_id, "agreement"))


@router.patch("/{agreement_id}")
async def update_agreement(
    agreement_id: int, body: AgreementUpdate, session: Session, _: Admin
) -> AgreementOut:
    """A new text is a new version; clients who consented to an older one keep that record."""
    agreement = await get_or_404(session, Agreement, agreement_id, "agreement", lock=True)
    if body.name is not None:
        agreement.name = body.name
    if body.text is not None and body.text != agreement.text:
        agreement.text = body.text
        agreement.version += 1
        session.add(
            AgreementVersion(agreement_id=agreement.id, version=agreement.version, text=body.text)
        )
    await session.commit()
    return agreement_out(agreement)


@router.get("/{agreement_id}/versions")
async def list_versions(agreement_id: int, session: Session, _: Reader) -> list[VersionOut]:
    await get_or_404(session, Agreement, agreement_id, "agreement")
    versions = await session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id == agreement_id)
        .order_by(AgreementVersion.version)
    )
    return [VersionOut.model_validate(v, from_attributes=True) for v in versions]


@router.delete("/{agreement_id}", status_code=204)
async def delete_agreement(agreement_id: int, session: Session, _: Admin) -> None:
    """Refused while a line requires it or a client's consent to it is on record."""
    agreement = await get_or_404(session, Agreement, agreement_id, "agreement")
    for line in await session.scalars(select(Line).where(Line.deleted_at.is_(None))):
        if line.settings["agreement"]["agreement_id"] == agreement_id:
            raise ApiError(409, f"line {line.id} uses agreement {agreement_id}")
    consents = select(func.count()).select_from(Consent).where(Consent.agreement_id == agreement_id)
    if await session.scalar(consents):
        raise ApiError(409, f"agreement {agreement_id} has consents on record; keep it")
    await session.execute(
        delete(AgreementVersion).where(AgreementVersion.agreement_id == agreement_id)
    )
    await session.delete(agreement)
    await session.commit()


@router.get("/{agreement_id}/consents")
async def list_consents(
    agreement_id: int,
    session: Session,
    _: Supervisor,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Consents after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ConsentOut]:
    """Who consented, when, to which version, through which channel; oldest first."""
    await get_or_404(session, Agreement, agreement_id, "agreement")
    consents = await session.scalars(
        select(Consent)
        .where(Consent.agreement_id == agreement_id, Consent.id > after)
        .order_by(Consent.id)
        .limit(limit)
    )
    return [ConsentOut.model_validate(c, from_attributes=True) for c in consents]
