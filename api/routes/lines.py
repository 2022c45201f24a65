"""Lines: every settings group of spec/settings.md, stored whole with defaults filled in."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import WithJsonSchema
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Admin, AppSettings, Reader, Session, get_or_404
from api.errors import ApiError, missing
from core import lines
from core.line_settings import LineSettings
from core.models import OPEN_DIALOG_STATUSES, Channel, Dialog, Line, Outbox

router = APIRouter(prefix="/v1/lines", tags=["lines"])


class LineOut(LineSettings):
    id: int
    name: str
    created_at: datetime
    updated_at: datetime


def line_out(line: Line) -> LineOut:
    meta = {"id": line.id, "created_at": line.created_at, "updated_at": line.updated_at}
    return LineOut.model_validate({**line.settings, **meta})


async def load_line(session: AsyncSession, line_id: int) -> Line:
    return await get_or_404(session, Line, line_id, "line")


@contextmanager
def _references_checked() -> Iterator[None]:
    """A setting that names nothing answers 404 naming the setting."""
    try:
        yield
    except lines.UnknownReference as error:
        raise missing(error.field, error.message) from None


@router.post("", status_code=201)
async def create_line(
    body: LineSettings, session: Session, _: Admin, config: AppSettings
) -> LineOut:
    with _references_checked():
        await lines.check_references(session, body)
    if config.max_lines:
        count = await session.scalar(
            select(func.count()).select_from(Line).where(Line.deleted_at.is_(None))
        )
        if (count or 0) >= config.max_lines:
            raise ApiError(409, f"the line limit of this server ({config.max_lines}) is reached")
    line = Line(settings=body.dump())
    session.add(line)
    await session.flush()
    if body.name is None:
        line.settings = {**line.settings, "name": lines.default_name(line.id)}
    await session.commit()
    return line_out(line)


@router.get("")
async def list_lines(session: Session, _: Reader) -> list[LineOut]:
    rows = await session.scalars(select(Line).where(Line.deleted_at.is_(None)).order_by(Line.id))
    return [line_out(line) for line in rows]


@router.get("/{line_id}")
async def get_line(line_id: int, session: Session, _: Reader) -> LineOut:
    return line_out(await load_line(session, line_id))


# Read as a plain object (only the keys given change), but it takes the shape of the line's
# settings, and the schema says so: unknown keys are refused, and a group's fields may be
# left out, as they merge (``api.openapi`` writes the ``...Patch`` variant of the schema).
SettingsPatch = Annotated[
    dict[str, Any], Body(), WithJsonSchema({"$ref": "#/components/schemas/LineSettingsPatch"})
]


@router.patch("/{line_id}")
async def update_line(line_id: int, session: Session, _: Admin, body: SettingsPatch) -> LineOut:
    """Partial settings: groups merge field by field; lists and maps are replaced whole."""
    line = await load_line(session, line_id)
    with _references_checked():
        await lines.update_settings(session, line, body, datetime.now(UTC))
    await session.commit()
    return line_out(line)


@router.delete("/{line_id}", status_code=204)
async def delete_line(line_id: int, session: Session, _: Admin, force: bool = False) -> None:
    """Refused while dialogs are open, unless ``force``, which closes them silently first."""
    # Locked: a channel moving onto this line meanwhile is either seen below or refused.
    line = await get_or_404(session, Line, line_id, "line", lock=True)
    open_dialogs = Dialog.line_id == line_id, Dialog.status.in_(OPEN_DIALOG_STATUSES)
    count = await session.scalar(select(func.count()).select_from(Dialog).where(*open_dialogs))
    if count and not force:
        raise ApiError(
            409,
            f"line {line_id} has {count} open dialogs; "
            "pass ?force=true to close them silently and delete the line",
        )
    now = datetime.now(UTC)
    closing = list(await session.scalars(select(Dialog.id).where(*open_dialogs)))
    await session.execute(
        update(Dialog)
        .where(Dialog.id.in_(closing))
        .values(status="closed", close_reason="line_deleted", closed_at=now)
    )
    # Their workflows are told through the outbox, so they stop their timers too.
    session.add_all(Outbox(kind="line_deleted", dialog_id=dialog_id) for dialog_id in closing)
    await session.execute(
        update(Channel)
        .where(Channel.line_id == line_id, Channel.deleted_at.is_(None))
        .values(deleted_at=now)
    )
    line.deleted_at = now
    await session.commit()
