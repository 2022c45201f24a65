"""Server-Sent Events for operator consoles: ``GET /v1/events``.

An operator key gets the events of its own operator (those whose ``operator_ids`` name it);
admin and supervisor keys get one operator's (``?operator_id=``) or, without it, every event.
Each message is ``id: <event id>``, ``event: <type>`` and ``data: {"id", "type", "created_at",
"data"}`` (the webhook body). The stream resumes after ``Last-Event-ID`` (sent by EventSource
when it reconnects) or ``?after=``; with neither it starts with the next event recorded.

Streams read the process's one ``EventFeed`` (``api.event_feed``), which polls the events
table for all of them; a stream resuming from further back reads up to the feed's position
itself first. Operators are filtered here, not in SQL, as ``operator_ids`` is a JSON list on
both databases. Delivery is at least once: a client deduplicates by id.

Open streams are capped per API key and per process (429 past either). A stream ends after
``MAX_STREAM_S`` and the client reconnects (EventSource does so by itself after ``retry``)
with ``Last-Event-ID``, losing nothing: uvicorn's graceful shutdown waits for open
responses, so a stream that never ended would hold up every restart.
"""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.webhooks import event_body
from api.deps import MAX_ID, AppSettings, DbId, Principal, Reader, ReadSession, get_or_404
from api.errors import ApiError, invalid
from api.event_feed import EventFeed
from api.typing_hub import Typing, TypingHub, either
from core.events.models import Event
from core.models import Operator

router = APIRouter(tags=["events"])

BATCH = 100
KEEPALIVE_S = 15.0
MAX_STREAM_S = 60.0
RETRY_MS = 1000
STREAMS_FULL_RETRY_S = 5


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


async def _read(sessions: async_sessionmaker[AsyncSession], after: int, upto: int) -> list[Event]:
    """Up to ``BATCH`` events with ``after < id <= upto``, for a stream catching up."""
    async with sessions() as session:
        query = (
            select(Event).where(Event.id > after, Event.id <= upto).order_by(Event.id).limit(BATCH)
        )
        return list(await session.scalars(query))


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
    settings: AppSettings,
    operator_id: DbId | None = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="Events after this id")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The events for an operator's console, as they are recorded."""
    following = await _operator_to_follow(session, principal, operator_id)
    cursor = _resume_after(last_event_id, after)
    # The stream reads in sessions of its own; this one (authentication's) is done.
    await session.close()
    feed: EventFeed = request.app.state.event_feed
    key = f"key:{principal.key_id}" if principal.key_id is not None else "bootstrap"
    if sum(feed.streams.values()) >= settings.max_event_streams:
        raise ApiError(
            429,
            "too many open event streams on this server; try again later",
            headers={"Retry-After": str(STREAMS_FULL_RETRY_S)},
        )
    if feed.streams[key] >= settings.max_event_streams_per_key:
        raise ApiError(
            429,
            f"this API key has {feed.streams[key]} event streams open, the most it may;"
            " close one first",
            headers={"Retry-After": str(STREAMS_FULL_RETRY_S)},
        )
    seq, reached = await feed.position()
    feed.streams[key] += 1
    return StreamingResponse(
        _stream(request, feed, key, following, reached if cursor is None else cursor, seq, reached),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    feed: EventFeed,
    key: str,
    operator_id: int | None,
    cursor: int,
    seq: int,
    reached: int,
) -> AsyncIterator[str]:
    """Events after ``cursor``: those up to ``reached`` read here, then the feed's after
    ``seq``, until the client leaves or ``MAX_STREAM_S`` passes; and, as they come, the
    typing of the web chat visitors whose dialogs the operator sees.

    A client that leaves cancels this generator (Starlette watches for the disconnect); the
    check each turn covers servers that do not.
    """
    sessions = request.app.state.read_sessions
    clock = asyncio.get_running_loop().time
    ends = clock() + MAX_STREAM_S
    last_sent = clock()

    def wanted(events: list[Event]) -> str:
        return "".join(
            _message(event)
            for event in events
            if operator_id is None or operator_id in (event.operator_ids or [])
        )

    def watched(signal: Typing) -> bool:
        return signal.who == "client" and (
            operator_id is None or operator_id in signal.operator_ids
        )

    hub: TypingHub = request.app.state.typing
    try:
        with hub.inbox(watched) as typing:
            yield f"retry: {RETRY_MS}\n\n"
            while clock() < ends and not await request.is_disconnected():
                if cursor < reached:  # catching up, in this stream's own reads
                    # Shielded: a client leaving mid-query cancels the stream, not the query,
                    # so the session ends cleanly instead of leaving its connection in doubt.
                    events = await asyncio.shield(_read(sessions, cursor, reached))
                    cursor = events[-1].id if events else reached
                else:
                    followed = feed.since(seq)
                    if followed is None:  # fell behind what the feed keeps: catch up again
                        seq, reached = await feed.position()
                        continue
                    events, seq = followed, seq + len(followed)
                    cursor = max([cursor, *(event.id for event in events)])
                text = wanted(events) + "".join(_typing_message(t) for t in typing.drain())
                if text:
                    yield text
                    last_sent = clock()
                elif clock() - last_sent >= KEEPALIVE_S:
                    yield ": keep-alive\n\n"
                    last_sent = clock()
                if cursor >= reached and not events:
                    quiet = min(KEEPALIVE_S - (clock() - last_sent), ends - clock())
                    await either(feed.wait(seq, max(quiet, 0.01)), typing.wait())
    finally:
        feed.streams[key] -= 1


def _typing_message(signal: Typing) -> str:
    """A visitor typing: no ``id``, as it is not an event to resume after."""
    data = {"dialog_id": signal.dialog_id, "text": signal.text, "at": signal.at.isoformat()}
    return f"event: typing\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
