"""Operators: create, update (fire, vacation), presence and workday."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)
from sqlalchemy import select

from api import schema_rules
from api.deps import Admin, Name, NoNul, Principal, Reader, Session, authenticate, get_or_404
from api.errors import ApiError, invalid
from core import operators
from core.models import Operator

router = APIRouter(prefix="/v1/operators", tags=["operators"])

Email = Annotated[
    str, StringConstraints(max_length=320, pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$"), NoNul
]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://[^\s\x00]+$"), NoNul]
Position = Annotated[str, StringConstraints(max_length=255), NoNul]


def _in_utc(value: datetime) -> datetime:
    """Stored in UTC: a time near the ends of the calendar may not fit once converted."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of the supported range of times") from None


def _written_time(value: object) -> object:
    """A time is an ISO 8601 string, as the schema says; a number is not one."""
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 time with a zone, e.g. 2026-01-31T18:00:00Z")
    return value


VacationUntil = Annotated[AwareDatetime, BeforeValidator(_written_time), AfterValidator(_in_utc)]
# Fields that a PATCH may omit but not set to null.
NOT_NULL = ("name", "fired")


class OperatorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email | None = None
    position: Position | None = None
    avatar_url: Url | None = None


class OperatorUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable(*NOT_NULL)
    )

    name: Name | None = None
    email: Email | None = None
    position: Position | None = None
    avatar_url: Url | None = None
    fired: StrictBool | None = None
    vacation_until: VacationUntil | None = Field(
        None, description="On vacation until this time; null ends the vacation"
    )


class PresenceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: operators.Presence


class WorkdayUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: operators.Workday


class OperatorOut(BaseModel):
    id: int
    name: str
    email: str | None
    position: str | None
    avatar_url: str | None
    fired: bool
    fired_at: datetime | None
    vacation_until: datetime | None
    presence: str
    workday: str
    on_vacation: bool
    created_at: datetime


def to_out(operator: Operator, now: datetime | None = None) -> OperatorOut:
    now = now or datetime.now(UTC)
    return OperatorOut(
        id=operator.id,
        name=operator.name,
        email=operator.email,
        position=operator.position,
        avatar_url=operator.avatar_url,
        fired=operator.fired,
        fired_at=operator.fired_at,
        vacation_until=operator.vacation_until,
        presence=operator.presence,
        workday=operator.workday,
        on_vacation=operator.vacation_until is not None and operator.vacation_until > now,
        created_at=operator.created_at,
    )


async def load(session: Session, operator_id: int) -> Operator:
    return await get_or_404(session, Operator, operator_id, "operator")


def _admin_or_self(principal: Principal, operator_id: int) -> None:
    if principal.role != "admin" and principal.operator_id != operator_id:
        raise ApiError(403, f"only an admin or operator {operator_id} may change this")


@router.post("", status_code=201)
async def create_operator(body: OperatorCreate, session: Session, _: Admin) -> OperatorOut:
    operator = Operator(**body.model_dump(), fired=False, presence="offline", workday="ended")
    session.add(operator)
    await session.commit()
    return to_out(operator)


@router.get("")
async def list_operators(session: Session, _: Reader) -> list[OperatorOut]:
    rows = await session.scalars(select(Operator).order_by(Operator.id))
    now = datetime.now(UTC)
    return [to_out(o, now) for o in rows]


@router.get("/{operator_id}")
async def get_operator(operator_id: int, session: Session, _: Reader) -> OperatorOut:
    return to_out(await load(session, operator_id))


@router.patch("/{operator_id}")
async def update_operator(
    operator_id: int, body: OperatorUpdate, session: Session, _: Admin
) -> OperatorOut:
    operator = await load(session, operator_id)
    changes = body.model_dump(exclude_unset=True)
    for field in NOT_NULL:
        if field in changes and changes[field] is None:
            raise invalid(field, "may not be null")
    await operators.change(session, operator, datetime.now(UTC), **changes)
    await session.commit()
    return to_out(operator)


@router.put("/{operator_id}/presence")
async def set_presence(
    operator_id: int,
    body: PresenceUpdate,
    session: Session,
    principal: Annotated[Principal, Depends(authenticate)],
) -> OperatorOut:
    _admin_or_self(principal, operator_id)
    operator = await load(session, operator_id)
    await operators.change(session, operator, datetime.now(UTC), presence=body.status)
    await session.commit()
    return to_out(operator)


@router.put("/{operator_id}/workday")
async def set_workday(
    operator_id: int,
    body: WorkdayUpdate,
    session: Session,
    principal: Annotated[Principal, Depends(authenticate)],
) -> OperatorOut:
    _admin_or_self(principal, operator_id)
    operator = await load(session, operator_id)
    await operators.change(session, operator, datetime.now(UTC), workday=body.state)
    await session.commit()
    return to_out(operator)
