"""Operator KPIs and line statistics over a time window, aggregated in SQL.

Both endpoints take ``from`` and ``to``: ISO 8601 times with a zone, each optional; the window
is ``[from, to)``, and a missing bound leaves that side open. Times are seconds; an average is
the integer sum divided by the count, rounded half up (``dialogs.average``), and null when
there is nothing to average. A dialog counts for its owner (``operator_id``, as the dialog list
shows it) and for the line it is on now: a transferred dialog takes all its numbers along.

``GET /v1/operators/{id}/kpi`` (admin, supervisor, or that operator's own key), over the
operator's dialogs *started* in the window:

- ``dialogs``: how many there are; ``closed``: those of them closed since (closed or spam,
  i.e. ``closed_at`` is set); ``answered``: those with a first answer (``first_answer_s`` set);
- ``messages``: operator messages this operator wrote in the window, in any dialog (also ones
  since transferred away or not started in the window);
- ``first_answer_avg_s``: the average ``first_answer_s`` of the answered dialogs;
- ``answer_avg_s``: the sum of ``total_answer_s`` over the sum of ``answers`` (every answered
  KPI item weighs the same, however many a dialog has); ``answer_max_s``: the largest
  ``max_answer_s``;
- ``overdue``: dialogs with at least one overdue KPI item (``kpi_overdue > 0``).

``GET /v1/lines/{id}/stats`` (admin, supervisor):

- ``dialogs_in_work``: the line's dialogs open *now* (status neither closed nor spam),
  whatever the window;
- ``dialogs``: the line's dialogs started in the window; ``closed``: its dialogs whose
  ``closed_at`` (closed or spam) falls in the window, whenever they started;
- ``messages``: every message (client, operator, bot, system) of the line's dialogs created
  in the window; ``leads``: leads created in the window from the line's dialogs;
- ``first_answer_avg_s`` and ``overdue``: as for operators, over the dialogs started in the
  window.
"""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, aliased

from api.deps import Principal, Reader, ReadSession, get_or_404, require
from api.errors import ApiError, invalid
from api.routes.dialogs import average
from core.crm.models import Lead
from core.models import CLOSED_DIALOG_STATUSES, Dialog, Line, Message, Operator

router = APIRouter(tags=["kpi"])

Supervisor = Annotated[Principal, Depends(require("admin", "supervisor"))]

_TIME_HELP = "ISO 8601 with a zone, e.g. 2024-05-01T00:00:00Z (send '+' as %2B)"
From = Annotated[
    str | None,
    Query(
        alias="from",
        description=f"Start, inclusive; {_TIME_HELP}",
        json_schema_extra={"format": "date-time"},
    ),
]
To = Annotated[
    str | None,
    Query(
        alias="to",
        description=f"End, exclusive (before `from`: an empty period); {_TIME_HELP}",
        json_schema_extra={"format": "date-time"},
    ),
]


class OperatorKpi(BaseModel):
    """One operator's numbers over the window; the definitions are in the module docstring."""

    operator_id: int
    since: datetime | None = Field(serialization_alias="from")
    until: datetime | None = Field(serialization_alias="to")
    dialogs: int
    closed: int
    answered: int
    messages: int
    first_answer_avg_s: int | None
    answer_avg_s: int | None
    answer_max_s: int | None
    overdue: int


class LineStats(BaseModel):
    """One line's numbers over the window; the definitions are in the module docstring."""

    line_id: int
    since: datetime | None = Field(serialization_alias="from")
    until: datetime | None = Field(serialization_alias="to")
    dialogs_in_work: int
    dialogs: int
    closed: int
    messages: int
    leads: int
    first_answer_avg_s: int | None
    overdue: int


def parse_time(field: str, value: str | None) -> datetime | None:
    """The query parameter as an aware UTC time; a 422 naming ``field`` when it is not one.

    Parsed here rather than by FastAPI so the error names ``from``, not ``query.from``, and
    can point at the usual cause: an unescaped ``+`` arrives as a space.
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        hint = "; send '+' in a zone as %2B" if " " in value.strip() else ""
        raise invalid(field, f"not an ISO 8601 time{hint}") from None
    if moment.tzinfo is None:
        raise invalid(field, "needs a zone, e.g. Z or +02:00")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise invalid(field, "out of the supported range of times") from None


def window(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """Both bounds parsed. A ``from`` after ``to`` is an empty period (all counts zero), as
    any two times the schema allows are a period."""
    return parse_time("from", since), parse_time("to", until)


def within(
    column: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    start: datetime | None,
    end: datetime | None,
) -> ColumnElement[bool]:
    """``column`` is set and falls in ``[start, end)``; a missing bound is open."""
    conditions: list[ColumnElement[bool]] = [column.is_not(None)]
    if start is not None:
        conditions.append(column >= start)
    if end is not None:
        conditions.append(column < end)
    return and_(*conditions)


@router.get("/v1/operators/{operator_id}/kpi")
async def operator_kpi(
    operator_id: int,
    session: ReadSession,
    principal: Reader,
    since: From = None,
    until: To = None,
) -> OperatorKpi:
    """The operator's answer times and counts over dialogs started in ``[from, to)``."""
    if principal.role == "operator" and principal.operator_id != operator_id:
        raise ApiError(403, "an operator sees only their own KPIs")
    start, end = window(since, until)
    await get_or_404(session, Operator, operator_id, "operator")
    written = (
        select(func.count(Message.id))
        .where(
            Message.author == "operator",
            Message.operator_id == operator_id,
            within(Message.created_at, start, end),
        )
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                func.count(Dialog.id),
                func.count(Dialog.closed_at),
                func.count(Dialog.first_answer_s),
                func.coalesce(func.sum(Dialog.first_answer_s), 0),
                func.coalesce(func.sum(Dialog.total_answer_s), 0),
                func.coalesce(func.sum(Dialog.answers), 0),
                func.max(Dialog.max_answer_s),
                func.count(case((Dialog.kpi_overdue > 0, 1))),
                written,
            ).where(Dialog.operator_id == operator_id, within(Dialog.started_at, start, end))
        )
    ).one()
    dialogs, closed, answered, first_sum, total, answers, longest, overdue, messages = row
    return OperatorKpi(
        operator_id=operator_id,
        since=start,
        until=end,
        dialogs=dialogs,
        closed=closed,
        answered=answered,
        messages=messages,
        first_answer_avg_s=average(int(first_sum), answered),
        answer_avg_s=average(int(total), int(answers)),
        answer_max_s=longest,
        overdue=overdue,
    )


@router.get("/v1/lines/{line_id}/stats")
async def line_stats(
    line_id: int,
    session: ReadSession,
    _: Supervisor,
    since: From = None,
    until: To = None,
) -> LineStats:
    """The line's load now and its traffic, first answers and overdue dialogs in the window."""
    start, end = window(since, until)
    await get_or_404(session, Line, line_id, "line")
    # Their own alias of dialogs, so SQLAlchemy does not correlate them with the outer query.
    of_line = aliased(Dialog)
    messages = (
        select(func.count(Message.id))
        .join(of_line, of_line.id == Message.dialog_id)
        .where(of_line.line_id == line_id, within(Message.created_at, start, end))
        .scalar_subquery()
    )
    leads = (
        select(func.count(Lead.id))
        .join(of_line, of_line.id == Lead.dialog_id)
        .where(of_line.line_id == line_id, within(Lead.created_at, start, end))
        .scalar_subquery()
    )
    started = within(Dialog.started_at, start, end)
    row = (
        await session.execute(
            select(
                func.count(case((Dialog.status.not_in(CLOSED_DIALOG_STATUSES), 1))),
                func.count(case((started, 1))),
                func.count(case((within(Dialog.closed_at, start, end), 1))),
                func.count(case((started, Dialog.first_answer_s))),
                func.coalesce(func.sum(case((started, Dialog.first_answer_s))), 0),
                func.count(case((and_(started, Dialog.kpi_overdue > 0), 1))),
                messages,
                leads,
            ).where(Dialog.line_id == line_id)
        )
    ).one()
    in_work, dialogs, closed, answered, first_sum, overdue, message_count, lead_count = row
    return LineStats(
        line_id=line_id,
        since=start,
        until=end,
        dialogs_in_work=in_work,
        dialogs=dialogs,
        closed=closed,
        messages=message_count,
        leads=lead_count,
        first_answer_avg_s=average(int(first_sum), answered),
        overdue=overdue,
    )
