"""Quick answers: lists of ready replies, edited by admins and supervisors, used by operators.

A line offers one list (``quick_answers_list_id``). In a dialog, ``GET
/v1/dialogs/{id}/quick-answers?q=`` finds the line's answers as the reply box's ``/`` search
ranks them, with the client's and operator's names filled in; a reply may then name the
answer (``{"quick_answer_id": ...}``) instead of its text.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api import schema_rules
from api.deps import (
    Cursor,
    DialogReader,
    Name,
    NoNul,
    Principal,
    Reader,
    ReadSession,
    Session,
    cursor_id,
    get_or_404,
    require,
)
from api.errors import ApiError, conflict, missing
from api.pages import Limit, Page
from api.routes.crm_leads import not_null
from api.routes.dialogs import visible_dialog
from core.crm.models import Contact
from core.models import Chat, Dialog, Line, Operator
from core.quick_answers import MAX_ANSWERS, QuickAnswer, QuickAnswerList, filled, ranked

router = APIRouter(tags=["quick answers"])

Editor = Annotated[Principal, Depends(require("admin", "supervisor"))]
# Letters (Latin, Cyrillic), digits, "_", "." and "-": what follows "/" in the reply box.
Code = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\u0400-\u04ff-]+$")
]
AnswerText = Annotated[str, StringConstraints(min_length=1, max_length=10000), NoNul]
Search = Annotated[str, Query(max_length=100, description="Letters typed after '/'")]


class ListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class ListOut(BaseModel):
    id: int
    name: str
    answers: int
    line_ids: list[int]
    created_at: datetime
    updated_at: datetime


class AnswerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Name
    code: Code
    text: AnswerText


class AnswerUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra=schema_rules.not_nullable("title", "code", "text")
    )
    title: Name | None = None
    code: Code | None = None
    text: AnswerText | None = None


class AnswerOut(BaseModel):
    id: int
    list_id: int
    title: str
    code: str
    text: str
    created_at: datetime
    updated_at: datetime


class FilledAnswer(AnswerOut):
    filled: str  # the text with #CLIENT_NAME# and #OPERATOR_NAME# put in for this dialog


def answer_out(answer: QuickAnswer) -> AnswerOut:
    return AnswerOut.model_validate(answer, from_attributes=True)


async def lines_using(session: AsyncSession, list_id: int) -> list[int]:
    lines = await session.scalars(select(Line).where(Line.deleted_at.is_(None)).order_by(Line.id))
    return [line.id for line in lines if line.settings.get("quick_answers_list_id") == list_id]


async def list_out(session: AsyncSession, row: QuickAnswerList) -> ListOut:
    count = await session.scalar(
        select(func.count()).select_from(QuickAnswer).where(QuickAnswer.list_id == row.id)
    )
    return ListOut(
        id=row.id,
        name=row.name,
        answers=count or 0,
        line_ids=await lines_using(session, row.id),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def answers_of(session: AsyncSession, list_id: int) -> list[QuickAnswer]:
    return list(await session.scalars(select(QuickAnswer).where(QuickAnswer.list_id == list_id)))


def page_of(found: list[Any], cursor: str | None, limit: int) -> tuple[list[Any], str | None]:
    """A page of an ordered search; its cursor is the position after the page."""
    start = cursor_id(cursor) or 0
    items = found[start : start + limit]
    more = start + limit < len(found)
    return items, str(start + limit) if more else None


async def committed(session: AsyncSession, code: str) -> None:
    """Commit; another answer of the list with the same short code makes this a 409."""
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise conflict("code", f"the list already has an answer with short code '{code}'") from None


# --- lists -----------------------------------------------------------------------------------


@router.post("/v1/quick-answer-lists", status_code=201)
async def create_list(body: ListCreate, session: Session, _: Editor) -> ListOut:
    row = QuickAnswerList(name=body.name)
    session.add(row)
    await session.commit()
    return await list_out(session, row)


@router.get("/v1/quick-answer-lists")
async def list_lists(session: ReadSession, _: Reader) -> list[ListOut]:
    rows = await session.scalars(select(QuickAnswerList).order_by(QuickAnswerList.id))
    return [await list_out(session, row) for row in rows]


@router.get("/v1/quick-answer-lists/{list_id}")
async def get_list(list_id: int, session: ReadSession, _: Reader) -> ListOut:
    return await list_out(session, await get_or_404(session, QuickAnswerList, list_id, "list"))


@router.patch("/v1/quick-answer-lists/{list_id}")
async def rename_list(list_id: int, body: ListCreate, session: Session, _: Editor) -> ListOut:
    row = await get_or_404(session, QuickAnswerList, list_id, "list")
    row.name = body.name
    await session.commit()
    return await list_out(session, row)


@router.delete("/v1/quick-answer-lists/{list_id}", status_code=204)
async def delete_list(list_id: int, session: Session, _: Editor) -> None:
    """Refused while a line offers the list; its answers go with it."""
    row = await get_or_404(session, QuickAnswerList, list_id, "list")
    if using := await lines_using(session, list_id):
        raise ApiError(409, f"list {list_id} is the quick answers of lines {using}")
    for answer in await answers_of(session, list_id):
        await session.delete(answer)
    await session.delete(row)
    await session.commit()


# --- answers ---------------------------------------------------------------------------------


@router.post("/v1/quick-answer-lists/{list_id}/answers", status_code=201)
async def create_answer(list_id: int, body: AnswerCreate, session: Session, _: Editor) -> AnswerOut:
    await get_or_404(session, QuickAnswerList, list_id, "list", lock=True)
    count = await session.scalar(
        select(func.count()).select_from(QuickAnswer).where(QuickAnswer.list_id == list_id)
    )
    if (count or 0) >= MAX_ANSWERS:
        raise ApiError(409, f"list {list_id} has {MAX_ANSWERS} answers, the most a list holds")
    answer = QuickAnswer(list_id=list_id, **body.model_dump())
    session.add(answer)
    await committed(session, body.code)
    return answer_out(answer)


@router.get("/v1/quick-answer-lists/{list_id}/answers")
async def search_answers(
    list_id: int,
    session: ReadSession,
    _: Reader,
    q: Search = "",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AnswerOut]:
    """Short code starting with ``q`` first, then short code, title and text containing it."""
    await get_or_404(session, QuickAnswerList, list_id, "list")
    found = ranked(await answers_of(session, list_id), q)
    items, after = page_of(found, cursor, limit)
    return Page[AnswerOut](items=[answer_out(a) for a in items], next_cursor=after)


@router.get("/v1/quick-answers/{answer_id}")
async def get_answer(answer_id: int, session: ReadSession, _: Reader) -> AnswerOut:
    return answer_out(await get_or_404(session, QuickAnswer, answer_id, "quick answer"))


@router.patch("/v1/quick-answers/{answer_id}")
async def update_answer(
    answer_id: int, body: AnswerUpdate, session: Session, _: Editor
) -> AnswerOut:
    answer = await get_or_404(session, QuickAnswer, answer_id, "quick answer")
    changes = body.model_dump(exclude_unset=True)
    not_null(changes, "title", "code", "text")
    for field, value in changes.items():
        setattr(answer, field, value)
    await committed(session, answer.code)
    return answer_out(answer)


@router.delete("/v1/quick-answers/{answer_id}", status_code=204)
async def delete_answer(answer_id: int, session: Session, _: Editor) -> None:
    await session.delete(await get_or_404(session, QuickAnswer, answer_id, "quick answer"))
    await session.commit()


# --- in a dialog -----------------------------------------------------------------------------


async def names_in(
    session: AsyncSession, dialog: Dialog, operator_id: int | None
) -> tuple[str | None, str | None]:
    """The client's name (the contact's, else the chat's) and the replying operator's."""
    chat = await session.get(Chat, dialog.chat_id)
    contact = await session.get(Contact, dialog.contact_id) if dialog.contact_id else None
    client = (contact.name if contact else None) or (chat.name if chat else None)
    operator = await session.get(Operator, operator_id) if operator_id else None
    return client, operator.name if operator else None


async def line_list_id(session: AsyncSession, dialog: Dialog) -> int | None:
    line = await session.get(Line, dialog.line_id)
    list_id = line.settings.get("quick_answers_list_id") if line else None
    return int(list_id) if list_id is not None else None


@router.get("/v1/dialogs/{dialog_id}/quick-answers")
async def dialog_quick_answers(
    dialog_id: int,
    session: Session,
    principal: DialogReader,
    q: Search = "",
    limit: Limit = 20,
    cursor: Cursor = None,
) -> Page[FilledAnswer]:
    """The dialog's line's answers for the reply box's ``/`` search, filled in for it."""
    dialog = await visible_dialog(session, principal, dialog_id)
    list_id = await line_list_id(session, dialog)
    found = ranked(await answers_of(session, list_id), q) if list_id is not None else []
    items, after = page_of(found, cursor, limit)
    # The operator who will reply: the caller, or (for a supervisor) the dialog's operator.
    client, operator = await names_in(session, dialog, principal.operator_id or dialog.operator_id)
    return Page[FilledAnswer](
        items=[
            FilledAnswer(**answer_out(a).model_dump(), filled=filled(a.text, client, operator))
            for a in items
        ],
        next_cursor=after,
    )


async def reply_text(
    session: AsyncSession, dialog: Dialog, answer_id: int, operator_id: int | None
) -> str:
    """The text that operator ``operator_id`` (None: a bot) sends by naming quick answer
    ``answer_id``: 404 naming the field when it is not in the dialog's line's list."""
    answer = await session.get(QuickAnswer, answer_id)
    if answer is None or answer.list_id != await line_list_id(session, dialog):
        raise missing("quick_answer_id", f"quick answer {answer_id} is not in this line's list")
    return filled(answer.text, *await names_in(session, dialog, operator_id))
