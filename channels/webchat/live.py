"""The web chat visitor's live stream: ``GET /v1/webchat/{code}/events?after=<message id>``.

Server-Sent Events, read by the widget with ``fetch`` (it sends the visitor token as a
header, which ``EventSource`` cannot): ``message`` (with ``id:``, the message's id) for each
message of the visitor's chat after ``after``, in order; ``dialog`` when the latest dialog's
status or rating changes; ``typing`` while an operator types. The widget reconnects after
the stream ends (each lasts ``MAX_STREAM_S``), a network failure, a wake from sleep or the
browser's ``online`` event, asking for what came after the last message it shows: nothing is
missed, and it skips ids it has.

The stream re-reads its chat when the process's ``EventFeed`` brings an event of one of the
chat's dialogs (a message, a status change) or a new dialog of the chat, so an idle visitor
costs no queries.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from api.deps import MAX_ID, ReadSession
from api.event_feed import EventFeed
from api.typing_hub import Typing, TypingHub, either
from channels.webchat.endpoints import (
    PAGE,
    Code,
    VisitorDialog,
    chat_page,
    mark_read,
    visitor_chat,
    visitor_of,
    webchat_of,
)
from core.events.models import Event
from core.models import Channel, Chat, Dialog

router = APIRouter(prefix="/v1/webchat/{code}", tags=["web chat"])

KEEPALIVE_S = 15.0
MAX_STREAM_S = 300.0
RETRY_MS = 1000


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream"}},
)
async def visitor_events(
    code: Code,
    request: Request,
    session: ReadSession,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="The last message id shown")] = 0,
) -> StreamingResponse:
    """The visitor's chat as it happens, from after message ``after``."""
    channel = await webchat_of(session, request, code)
    subject = visitor_of(request, channel)
    await session.close()  # the stream reads in sessions of its own
    return StreamingResponse(
        _stream(request, channel, subject, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request, channel: Channel, subject: str, after: int
) -> AsyncIterator[str]:
    feed: EventFeed = request.app.state.event_feed
    hub: TypingHub = request.app.state.typing
    sessions = request.app.state.read_sessions
    clock = asyncio.get_running_loop().time
    ends, last_sent = clock() + MAX_STREAM_S, clock()
    seq, _ = await feed.position()
    chat: Chat | None = None
    dialogs: set[int] = set()
    shown: VisitorDialog | None = None
    changed = True  # read at once: what came after ``after`` while the widget was away

    def operator_typing(signal: Typing) -> bool:
        return signal.who == "operator" and chat is not None and signal.chat_id == chat.id

    with hub.inbox(operator_typing) as typing:
        yield f"retry: {RETRY_MS}\n\n"
        while clock() < ends and not await request.is_disconnected():
            text = ""
            if changed:
                async with sessions() as session:
                    chat = chat or await visitor_chat(session, channel, subject)
                    page = await chat_page(session, chat, after, PAGE)
                    if chat is not None:
                        found = await session.scalars(
                            select(Dialog.id).where(Dialog.chat_id == chat.id)
                        )
                        dialogs = set(found)
                for message in page.items:
                    text += _sse("message", message.model_dump_json(), message.id)
                    after = message.id
                if chat is not None and page.items:
                    await mark_read(request.app.state.sessions, chat.id, after)
                if page.dialog is not None and page.dialog != shown:
                    shown = page.dialog
                    text += _sse("dialog", shown.model_dump_json())
                changed = len(page.items) == PAGE  # more to read at once
            for signal in typing.drain():
                typing_now = {"name": signal.name, "typing": bool(signal.text)}
                text += _sse("typing", json.dumps(typing_now))
            if text:
                yield text
                last_sent = clock()
            elif clock() - last_sent >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = clock()
            if changed:
                continue
            quiet = min(KEEPALIVE_S - (clock() - last_sent), ends - clock())
            await either(feed.wait(seq, max(quiet, 0.01)), typing.wait())
            events = feed.since(seq)
            if events is None:  # fell behind what the feed keeps: read the chat again
                seq, _ = await feed.position()
                changed = True
                continue
            seq += len(events)
            changed = any(_concerns(event, chat, dialogs) for event in events)


def _concerns(event: Event, chat: Chat | None, dialogs: set[int]) -> bool:
    """The event is of one of the chat's dialogs, or starts a new one of the chat (or of
    the visitor's first message, before the stream knew their chat)."""
    if event.dialog_id in dialogs:
        return True
    return event.type == "dialog.created" and (
        chat is None or (event.data or {}).get("chat_id") == chat.id
    )


def _sse(kind: str, data: str, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n"
