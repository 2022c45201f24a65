"""Personal-data agreements: each text change is a new version; consents name the version."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, WithJsonSchema
from sqlalchemy import delete, func, select

from api import schema_rules
from api.deps import MAX_ID, Admin, Name, NoNul, Principal, Reader, Session, get_or_404, require
from api.errors import ApiError, invalid
from core import agreement_templates
from core.agreement_templates import AgreementTemplate
from core.languages import ISO_639_1
from core.models import Agreement, AgreementVersion, Consent, Line

router = APIRouter(tags=["agreements"])

Text = Annotated[str, StringConstraints(min_length=1, max_length=20000), NoNul]
Supervisor = Annotated[Principal, Depends(require("admin", "supervisor"))]


# A known template's id; the schema lists them (``GET /v1/agreement-templates``).
TemplateId = Annotated[
    str,
    StringConstraints(max_length=64),
    WithJsonSchema({"type": "string", "enum": [t.id for t in agreement_templates.TEMPLATES]}),
]


class AgreementCreate(BaseModel):
    """``name`` and ``text``, or a ``template_id`` filling whichever of them is not given."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_rules.required_together(("template_id",), ("name", "text")),
    )
    name: Name | None = None
    text: Text | None = None
    template_id: TemplateId | None = None


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


def _name_and_text(body: AgreementCreate) -> tuple[str, str]:
    """The body's name and text, the template's where the body leaves them out; 422 naming
    an unknown ``template_id``, or the fields missing without a template."""
    name, text = body.name, body.text
    if body.template_id is not None:
        template = agreement_templates.find(body.template_id)
        if template is None:
            known = [t.id for t in agreement_templates.TEMPLATES]
            raise invalid("template_id", f"unknown template '{body.template_id}'; one of {known}")
        name = template.title if name is None else name
        text = template.text if text is None else text
    if name is None or text is None:
        missing = [field for field, value in (("name", name), ("text", text)) if value is None]
        message = "required unless template_id is given"
        errors = [{"field": field, "message": message} for field in missing]
        raise ApiError(422, "; ".join(f"{f}: {message}" for f in missing), errors)
    return name, text


@router.post("/v1/agreements", status_code=201)
async def create_agreement(body: AgreementCreate, session: Session, _: Admin) -> AgreementOut:
    """From ``name`` and ``text``, or from a template (``GET /v1/agreement-templates``)."""
    name, text = _name_and_text(body)
    agreement = Agreement(name=name, text=text, version=1)
    session.add(agreement)
    await session.flush()
    session.add(AgreementVersion(agreement_id=agreement.id, version=1, text=text))
    await session.commit()
    return agreement_out(agreement)


@router.get("/v1/agreements")
async def list_agreements(session: Session, _: Reader) -> list[AgreementOut]:
    agreements = await session.scalars(select(Agreement).order_by(Agreement.id))
    return [agreement_out(a) for a in agreements]


@router.get("/v1/agreements/{agreement_id}")
async def get_agreement(agreement_id: int, session: Session, _: Reader) -> AgreementOut:
    return agreement_out(await get_or_404(session, Agreement, agreement_id, "agreement"))


@router.patch("/v1/agreements/{agreement_id}")
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


@router.get("/v1/agreements/{agreement_id}/versions")
async def list_versions(agreement_id: int, session: Session, _: Reader) -> list[VersionOut]:
    await get_or_404(session, Agreement, agreement_id, "agreement")
    versions = await session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id == agreement_id)
        .order_by(AgreementVersion.version)
    )
    return [VersionOut.model_validate(v, from_attributes=True) for v in versions]


@router.delete("/v1/agreements/{agreement_id}", status_code=204)
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


@router.get("/v1/agreements/{agreement_id}/consents")
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


def _iso_639_1(code: str | None) -> str | None:
    if code is not None and code not in ISO_639_1:
        raise ValueError(f"'{code}' is not an ISO 639-1 language code")
    return code


@router.get("/v1/agreement-templates")
async def list_templates(
    _: Reader,
    language: Annotated[
        str | None,
        Query(description="ISO 639-1 code: only templates in this language"),
        WithJsonSchema({"type": "string", "enum": sorted(ISO_639_1)}),
        AfterValidator(_iso_639_1),
    ] = None,
) -> list[AgreementTemplate]:
    """Ready personal-data consent texts to start an agreement from."""
    return agreement_templates.in_language(language)
