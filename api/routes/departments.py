"""Departments: named, ordered groups of operators that a line's queue can list."""

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, DbId, Name, Reader, Session, get_or_404
from api.errors import ApiError, invalid, missing
from core import routing
from core.models import Department, DepartmentMember, Line, Operator

router = APIRouter(prefix="/v1/departments", tags=["departments"])


class DepartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    operator_ids: list[DbId] = []


class DepartmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    operator_ids: list[DbId] | None = None


class DepartmentOut(BaseModel):
    id: int
    name: str
    operator_ids: list[int]
    created_at: datetime


async def _member_ids(session: AsyncSession, department_id: int) -> list[int]:
    rows = await session.scalars(
        select(DepartmentMember.operator_id)
        .where(DepartmentMember.department_id == department_id)
        .order_by(DepartmentMember.position)
    )
    return list(rows)


async def _set_members(session: AsyncSession, department: Department, ids: list[int]) -> None:
    if len(set(ids)) != len(ids):
        raise invalid("operator_ids", "an operator is listed twice")
    known = set(await session.scalars(select(Operator.id).where(Operator.id.in_(ids))))
    for index, operator_id in enumerate(ids):
        if operator_id not in known:
            raise missing(f"operator_ids[{index}]", f"operator {operator_id} does not exist")
    await session.execute(
        delete(DepartmentMember).where(DepartmentMember.department_id == department.id)
    )
    session.add_all(
        DepartmentMember(department_id=department.id, operator_id=operator_id, position=position)
        for position, operator_id in enumerate(ids)
    )


async def _out(session: AsyncSession, department: Department) -> DepartmentOut:
    return DepartmentOut(
        id=department.id,
        name=department.name,
        operator_ids=await _member_ids(session, department.id),
        created_at=department.created_at,
    )


async def _lines_listing(session: AsyncSession, department_id: int) -> list[int]:
    """Live lines whose queue lists the department."""
    lines = await session.scalars(select(Line).where(Line.deleted_at.is_(None)))
    member = {"type": "department", "id": department_id}
    return [line.id for line in lines if member in line.settings["queue"]["members"]]


async def _load(session: AsyncSession, department_id: int) -> Department:
    return await get_or_404(session, Department, department_id, "department")


@router.post("", status_code=201)
async def create_department(body: DepartmentCreate, session: Session, _: Admin) -> DepartmentOut:
    department = Department(name=body.name)
    session.add(department)
    await session.flush()
    await _set_members(session, department, body.operator_ids)
    await session.commit()
    return await _out(session, department)


@router.get("")
async def list_departments(session: Session, _: Reader) -> list[DepartmentOut]:
    departments = await session.scalars(select(Department).order_by(Department.id))
    return [await _out(session, d) for d in departments]


@router.get("/{department_id}")
async def get_department(department_id: int, session: Session, _: Reader) -> DepartmentOut:
    return await _out(session, await _load(session, department_id))


@router.patch("/{department_id}")
async def update_department(
    department_id: int, body: DepartmentUpdate, session: Session, _: Admin
) -> DepartmentOut:
    department = await _load(session, department_id)
    if body.name is not None:
        department.name = body.name
    if body.operator_ids is not None:
        await _set_members(session, department, body.operator_ids)
        for line_id in await _lines_listing(session, department_id):
            await routing.rebalance_line(session, line_id, datetime.now(UTC))
    await session.commit()
    return await _out(session, department)


@router.delete("/{department_id}", status_code=204)
async def delete_department(department_id: int, session: Session, _: Admin) -> None:
    department = await _load(session, department_id)
    using = await _lines_listing(session, department_id)
    if using:
        raise ApiError(
            409,
            f"department {department_id} is in the queue of lines {using}; remove it there first",
        )
    await session.delete(department)
    await session.commit()
