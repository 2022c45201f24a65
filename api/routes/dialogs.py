"""Reading dialogs: the list, one dialog with its deadlines and workflow, its messages."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError

from api.deps import (
    AppSettings,
    Cursor,
    DbId,
    DialogReader,
    Principal,
    Reader,
    ReadSession,
    Session,
    Temporal,
    cursor_id,
    get_or_404,
)
from api.errors import ApiError
from channels import registry
from core.config import Settings
from core.models import Dialog, Message, Operator
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import DialogState, Status

router = APIRouter(tags=["dialogs"])


class Kpi(BaseModel):
    """A dialog's answer times in seconds; every time is null until the first answer."""

    first_answer_s: int | None = None
    total_answer_s: int | None = None
    avg_answer_s: int | None = None
    max_answer_s: int | None = None
    overdue: bool = False
    overdue_count: int = 0


class Rating(BaseModel):
    client: Literal["like", "dislike"] | None = None
    supervisor: int | None = None
    comment: str | None = None


class WorkflowRef(BaseModel):
    id: str
    run_id: str | None
    ui_url: str


class DialogOut(BaseModel):
    id: int
    number: int
    line_id: int
    chat_id: int
    contact_id: int | None = None  # the client in the CRM, once the tracker knows them
    channel_type: str
    status: str
    close_reason: str | None
    operator_id: int | None
    offered_to: list[int]
    bot_id: int | None = None
    pinned: bool
    # Waited ``no_answer.after`` without an accept; an accept or a reply clears it.
    unanswered: bool = False
    started_at: datetime
    closed_at: datetime | None
    kpi: Kpi = Kpi()
    rating: Rating = Rating()


class DialogDetail(DialogOut):
    deadlines: dict[str, datetime]
    workflow: WorkflowRef


class DialogPage(BaseModel):
    items: list[DialogOut]
    next_cursor: str | None


class AttachmentOut(BaseModel):
    kind: str
    ref: str
    name: str | None = None
    mime_type: str | None = None
    # Where openlines serves the file, for channels it fetches files from (telegram); null
    # where ``ref`` is all it has (an ``api`` client's own reference).
    url: str | None = None


class MessageOut(BaseModel):
    id: int
    author: str
    operator_id: int | None
    text: str
    created_at: datetime
    # Messages to the client: pending, sent, delivered, read or failed (with the channel's
    # error); null for the client's own messages.
    delivery_status: str | None = None
    delivery_error: str | None = None
    attachments: list[AttachmentOut] = []

    @classmethod
    def of(cls, message: Message, channel_type: str) -> "MessageOut":
        connector = registry.CONNECTORS.get(channel_type)
        served = connector is not None and connector.fetch_attachment is not None
        attachments = [
            AttachmentOut(**a, url=f"/v1/messages/{message.id}/attachments/{n}" if served else None)
            for n, a in enumerate(message.attachments or [])
        ]
        return cls(
            id=message.id,
            author=message.author,
            operator_id=message.operator_id,
            text=message.text,
            created_at=message.created_at,
            delivery_status=message.delivery_status,
            delivery_error=message.delivery_error,
            attachments=attachments,
        )


def average(total: int, count: int) -> int | None:
    """``total / count`` rounded half up to a whole number, or None when ``count`` is 0.

    Integer arithmetic on sums, never SQL ``AVG``: that answers a float on SQLite and a
    numeric on PostgreSQL, and rounding those alike is harder than not producing them.
    """
    if count <= 0:
        return None
    return (2 * total + count) // (2 * count)


def dialog_kpi(dialog: Dialog) -> Kpi:
    """The dialog's KPI columns as the list shows them.

    The total is null, like the other times, until something was answered: 0 would read as
    "answered instantly". ``overdue`` is the flag a list colours by; the count says how often.
    """
    answers = dialog.answers or 0
    overdue = dialog.kpi_overdue or 0
    return Kpi(
        first_answer_s=dialog.first_answer_s,
        total_answer_s=(dialog.total_answer_s or 0) if answers else None,
        avg_answer_s=average(dialog.total_answer_s or 0, answers),
        max_answer_s=dialog.max_answer_s,
        overdue=overdue > 0,
        overdue_count=overdue,
    )


def dialog_out(dialog: Dialog, state: DialogState | None = None) -> dict[str, Any]:
    """The dialog row, with the workflow's fresher state laid over it when we have it."""
    out: dict[str, Any] = {
        "id": dialog.id,
        "number": dialog.id,
        "line_id": dialog.line_id,
        "chat_id": dialog.chat_id,
        "contact_id": dialog.contact_id,
        "channel_type": dialog.channel_type,
        "status": dialog.status,
        "close_reason": dialog.close_reason,
        "operator_id": dialog.operator_id,
        "offered_to": list(dialog.offered_to) if dialog.operator_id is None else [],
        "bot_id": dialog.bot_id,
        "pinned": dialog.pinned,
        "unanswered": dialog.unanswered,
        "started_at": dialog.started_at,
        "closed_at": dialog.closed_at,
        "kpi": dialog_kpi(dialog),
        "rating": Rating(
            client=dialog.client_rating,
            supervisor=dialog.supervisor_rating,
            comment=dialog.supervisor_comment,
        ),
    }
    if state is not None:
        out.update(
            line_id=state.line_id,
            status=state.status,
            close_reason=state.close_reason,
            operator_id=state.operator_id,
            offered_to=state.offered_to,
            bot_id=state.bot_id,
            pinned=state.pinned,
            unanswered=dialog.unanswered and state.operator_id is None,
            closed_at=state.closed_at or dialog.closed_at,
        )
        if state.rating is not None:
            out["rating"] = out["rating"].model_copy(update={"client": state.rating})
    return out


def may_see(principal: Principal, dialog: Dialog) -> bool:
    """Operators see the dialogs offered to them or theirs, bots the dialogs they are in;
    admins and supervisors see all."""
    if principal.role in ("admin", "supervisor"):
        return True
    if principal.role == "bot":
        return principal.bot_id is not None and dialog.bot_id == principal.bot_id
    return principal.operator_id is not None and (
        dialog.operator_id == principal.operator_id or principal.operator_id in dialog.offered_to
    )


async def visible_dialog(session: Session, principal: Principal, dialog_id: int) -> Dialog:
    """The dialog, if the caller may see it.

    Ends the read transaction: callers go on to ask the workflow, whose activities need the
    database, and on SQLite an open transaction would hold them up.
    """
    dialog = await get_or_404(session, Dialog, dialog_id, "dialog")
    await session.commit()
    if not may_see(principal, dialog):
        if principal.role == "bot":
            raise ApiError(403, f"dialog {dialog_id} is not with bot {principal.bot_id}")
        raise ApiError(403, f"dialog {dialog_id} is not offered to or held by this operator")
    return dialog


def workflow_ref(dialog: Dialog, settings: Settings) -> WorkflowRef:
    wf_id = workflow_id(dialog.chat_id)
    ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{wf_id}"
    if dialog.run_id:
        ui = f"{ui}/{dialog.run_id}"
    return WorkflowRef(id=wf_id, run_id=dialog.run_id, ui_url=ui)


async def live_state(client: Client, dialog: Dialog) -> DialogState | None:
    """The workflow's own view, or None once its run has ended or is not reachable."""
    if dialog.status in ("closed", "spam"):
        return None
    handle = client.get_workflow_handle_for(
        DialogWorkflow.run,
        workflow_id(dialog.chat_id),  # the current run, if still this dialog
    )
    try:
        state: DialogState = await handle.query(DialogWorkflow.state)
    except RPCError:
        return None
    return state if state.dialog_id == dialog.id else None


@router.get("/v1/dialogs")
async def list_dialogs(
    session: ReadSession,
    principal: DialogReader,
    line_id: DbId | None = None,
    status: Status | None = None,
    operator_id: DbId | None = None,
    unanswered: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> DialogPage:
    """Newest first. ``cursor`` is the ``next_cursor`` of the previous page;
    ``unanswered=true`` lists the dialogs marked unanswered."""
    query = select(Dialog).order_by(Dialog.id.desc()).limit(limit + 1)
    if (after := cursor_id(cursor)) is not None:
        query = query.where(Dialog.id < after)
    if line_id is not None:
        query = query.where(Dialog.line_id == line_id)
    if status is not None:
        query = query.where(Dialog.status == status)
    if operator_id is not None:
        query = query.where(Dialog.operator_id == operator_id)
    if unanswered is not None:
        query = query.where(Dialog.unanswered == unanswered)
    if principal.role == "operator":
        # Offers are few and short-lived: filter them here rather than in JSON SQL.
        mine = Dialog.operator_id == principal.operator_id
        query = query.where(Dialog.status.not_in(("closed", "spam")) | mine)
    if principal.role == "bot":
        query = query.where(Dialog.bot_id == principal.bot_id)
    rows = list(await session.scalars(query))
    visible = [d for d in rows[:limit] if may_see(principal, d)]
    next_cursor = str(rows[limit - 1].id) if len(rows) > limit else None
    return DialogPage(items=[DialogOut(**dialog_out(d)) for d in visible], next_cursor=next_cursor)


@router.get("/v1/dialogs/{dialog_id}")
async def get_dialog(
    dialog_id: int,
    session: ReadSession,
    principal: DialogReader,
    client: Temporal,
    config: AppSettings,
) -> DialogDetail:
    """The dialog with its running timers' deadlines and a link to its workflow."""
    dialog = await visible_dialog(session, principal, dialog_id)
    state = await live_state(client, dialog)
    return DialogDetail(
        **dialog_out(dialog, state),
        deadlines=state.deadlines if state else {},
        workflow=workflow_ref(dialog, config),
    )


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


@router.get("/v1/dialogs/{dialog_id}/messages")
async def list_messages(
    dialog_id: int,
    session: ReadSession,
    principal: DialogReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
) -> MessagePage:
    """The dialog's messages, oldest first, ``limit`` at a time; ``cursor`` is the
    ``next_cursor`` of the previous page (null on the last)."""
    dialog = await visible_dialog(session, principal, dialog_id)
    query = select(Message).where(Message.dialog_id == dialog_id)
    if (after := cursor_id(cursor)) is not None:
        query = query.where(Message.id > after)
    rows = list(await session.scalars(query.order_by(Message.id).limit(limit + 1)))
    items = [MessageOut.of(m, dialog.channel_type) for m in rows[:limit]]
    return MessagePage(items=items, next_cursor=str(items[-1].id) if len(rows) > limit else None)


@router.get("/v1/operators/{operator_id}/dialogs")
async def operator_dialogs(
    operator_id: int, session: ReadSession, principal: Reader
) -> list[DialogOut]:
    """The operator's console: open dialogs offered to them or theirs, oldest first."""
    if principal.role == "operator" and principal.operator_id != operator_id:
        raise ApiError(403, "an operator sees only their own dialogs")
    await get_or_404(session, Operator, operator_id, "operator")
    unheld_offer = Dialog.holder_id.is_(None) & Dialog.waiting_since.is_not(None)  # `all`
    open_dialogs = await session.scalars(
        select(Dialog)
        .where(Dialog.status.not_in(("closed", "spam")))
        .where(
            (Dialog.operator_id == operator_id) | (Dialog.holder_id == operator_id) | unheld_offer
        )
        .order_by(Dialog.id)
    )
    as_operator = Principal(role="operator", operator_id=operator_id)
    return [DialogOut(**dialog_out(d)) for d in open_dialogs if may_see(as_operator, d)]
