"""Server-Sent Events for operator consoles: ``GET /v1/events``.

An operator key gets the events of its own operator (those whose ``operator_ids`` name it);
admin and supervisor keys get one operator's (``?operator_id=``) or, without it, every event.
Each message is ``id: <event id>``, ``event: <type>`` and ``data: {"id", "type", "created_at",
"data"}`` (the webhook body). The stream resumes after ``Last-Event-ID`` (sent by EventSource
when it reconnects) or ``?after=``; with neither it starts with the next event recorded.

The events table is polled (a short read transaction each ~0.5 s) rather than pushed to: it
works the same on SQLite and PostgreSQL and holds no connection between polls. Operators are
filtered here, not in SQL, as ``operator_ids`` is a JSON list on both databases.

On PostgreSQL an event's id is taken when it is inserted but becomes visible when its
transaction commits, so a lower id can appear after a higher one was sent. Ids skipped over
are looked for again for ``GAP_WAIT_S``; such a late event is sent then, after higher ids.
Delivery is at least once: a client deduplicates by id.

A stream ends after ``MAX_STREAM_S`` and the client reconnects (EventSource does so by itself
after ``retry``) with ``Last-Event-ID``, losing nothing: uvicorn's graceful shutdown waits
for open responses, so a stream that never ended would hold up every restart.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.webhooks import event_body
from api.deps import MAX_ID, DbId, Principal, Reader, ReadSession, get_or_404
from api.errors import ApiError, invalid
from core.events.models import Event
from core.models import Operator

router = APIRouter(tags=["events"])

POLL_S = 0.5
BATCH = 100
KEEPALIVE_S = 15.0
MAX_STREAM_S = 60.0
RETRY_MS = 1000
GAP_WAIT_S = 30.0
MAX_GAPS = 1000
"""Skipped ids looked for at once; a larger jump (ids the database skipped) is not a gap."""


async def _operator_to_follow(
    session: AsyncSession, principal: Principal, operator_id: int | None
) -> int | None:
    """The operator whose events the caller gets; None for all of them."""
    if principal.role == "operator":
        if operator_id is not None and operator_id != principal.operator_id:
            raise ApiError(403, "an operator key gets only its own operator's events")
        return principal.operator_id
    if operator_id is not None:
        await get_or_404(session, Operator, operator_id, "operator")
    return operator_id


def _resume_after(last_event_id: str | None, after: int | None) -> int | None:
    """The id to resume after: the header (a reconnecting EventSource) wins over the query."""
    if last_event_id is None:
        return after
    value = last_event_id.strip()
    if not re.fullmatch(r"[0-9]{1,10}", value) or int(value) > MAX_ID:
        raise invalid("Last-Event-ID", "not an event id this stream sent")
    return int(value)


async def _poll(
    sessions: async_sessionmaker[AsyncSession], cursor: int, gaps: list[int]
) -> tuple[list[Event], list[Event]]:
    """Up to ``BATCH`` events after ``cursor``, and those of the ``gaps`` ids now there."""
    async with sessions() as session:
        fresh = list(
            await session.scalars(
                select(Event).where(Event.id > cursor).order_by(Event.id).limit(BATCH)
            )
        )
        late = list(await session.scalars(select(Event).where(Event.id.in_(gaps)))) if gaps else []
        return fresh, late


def _message(event: Event) -> str:
    data = json.dumps(event_body(event), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n"


@router.get(
    "/v1/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream"}},
)
async def stream_events(
    request: Request,
    session: ReadSession,
    principal: Reader,
    operator_id: DbId | None = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Events after this id")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The events for an operator's console, as they are recorded."""
    following = await _operator_to_follow(session, principal, operator_id)
    cursor = _resume_after(last_event_id, after)
    if cursor is None:
        cursor = await session.scalar(select(func.max(Event.id))) or 0
    # The stream reads in sessions of its own; this one (authentication's) is done.
    await session.close()
    return StreamingResponse(
        _stream(request, request.app.state.read_sessions, following, cursor),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    sessions: async_sessionmaker[AsyncSession],
    operator_id: int | None,
    cursor: int,
) -> AsyncIterator[str]:
    """Poll for events after ``cursor`` until the client leaves or ``MAX_STREAM_S`` passes.

    A client that leaves cancels this generator (Starlette watches for the disconnect); the
    check each turn covers servers that do not.
    """
    clock = asyncio.get_running_loop().time
    ends = clock() + MAX_STREAM_S
    last_sent = clock()
    gaps: dict[int, float] = {}  # id skipped over -> when to stop looking for it
    yield f"retry: {RETRY_MS}\n\n"
    while clock() < ends and not await request.is_disconnected():
        # Shielded: a client leaving mid-query cancels the stream, not the query, so the
        # session ends cleanly instead of leaving its connection in doubt.
        fresh, late = await asyncio.shield(_poll(sessions, cursor, list(gaps)))
        now = clock()
        for event in late:
            del gaps[event.id]
        gaps = {gap: until for gap, until in gaps.items() if until > now}
        for event in fresh:
            skipped = range(cursor + 1, event.id)
            if len(gaps) + len(skipped) <= MAX_GAPS:
                gaps.update(dict.fromkeys(skipped, now + GAP_WAIT_S))
            cursor = event.id
        wanted = [
            event
            for event in sorted(late, key=lambda e: e.id) + fresh
            if operator_id is None or operator_id in (event.operator_ids or [])
        ]
        if wanted:
            yield "".join(_message(event) for event in wanted)
            last_sent = now
        elif now - last_sent >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = now
        if len(fresh) < BATCH:
            await asyncio.sleep(POLL_S)
