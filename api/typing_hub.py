"""Who is typing in a dialog, live and never stored.

A web chat visitor's typing (with the text typed so far when the line's ``watch_typing`` is
on) reaches the consoles of the operators who hold or are offered the dialog, and of
supervisors following every event; an operator's typing reaches the visitor's widget. Each
open stream holds an ``Inbox`` in its API process's ``TypingHub``.

On PostgreSQL a signal goes out as ``NOTIFY openlines_typing`` and every API process hands it
to its own inboxes: behind a load balancer the visitor and the operator may be on different
processes. On SQLite (one process) it goes to the inboxes at once. A signal is a hint that
may be lost (a full inbox drops its oldest); the widget and the console clear a typing mark
after a few seconds without a new one.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.background import in_background
from core.pg_listen import conninfo_of, listen

log = logging.getLogger("openlines.api.typing")

CHANNEL = "openlines_typing"
MAX_TEXT = 1000  # of what the visitor typed so far (a NOTIFY payload holds 8000 bytes)
INBOX_SIZE = 50


class Typing(BaseModel):
    """Someone is typing (``text`` empty: stopped). ``text`` only for a visitor watched by
    the line; ``name`` is the operator as the visitor sees them."""

    dialog_id: int
    chat_id: int
    who: Literal["client", "operator"]
    operator_ids: list[int]  # whose consoles show a visitor's typing
    text: str | None = None
    name: str | None = None
    at: datetime


class Inbox:
    """An open stream's typing signals, those it ``wants``."""

    def __init__(self, wants: Callable[[Typing], bool]) -> None:
        self.wants = wants
        self.queue: asyncio.Queue[Typing] = asyncio.Queue(INBOX_SIZE)
        self._arrived = asyncio.Event()

    def put(self, typing: Typing) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # the oldest is the least worth showing
        self.queue.put_nowait(typing)
        self._arrived.set()

    async def wait(self) -> None:
        """Until a signal is in the inbox."""
        while self.queue.empty():
            self._arrived.clear()
            await self._arrived.wait()

    def drain(self) -> list[Typing]:
        found = []
        while not self.queue.empty():
            found.append(self.queue.get_nowait())
        return found


class TypingHub:
    """The typing signals of one API process's streams."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], database_url: str) -> None:
        self._sessions = sessions
        self._conninfo = conninfo_of(database_url)
        self._inboxes: set[Inbox] = set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Listen for other processes' signals (PostgreSQL) for the duration of the block."""
        if self._conninfo is None:
            yield
            return
        async with in_background(listen(self._conninfo, CHANNEL, self._notified, _up, log)):
            yield

    @contextlib.contextmanager
    def inbox(self, wants: Callable[[Typing], bool]) -> Iterator[Inbox]:
        opened = Inbox(wants)
        self._inboxes.add(opened)
        try:
            yield opened
        finally:
            self._inboxes.discard(opened)

    async def publish(self, typing: Typing) -> None:
        if self._conninfo is None:
            self._deliver(typing)
            return
        async with self._sessions() as session:
            payload = typing.model_dump_json()
            await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})
            await session.commit()

    def _notified(self, payload: str) -> None:
        try:
            self._deliver(Typing.model_validate_json(payload))
        except ValidationError:
            log.warning("ignored a malformed typing notification")

    def _deliver(self, typing: Typing) -> None:
        for inbox in list(self._inboxes):
            if inbox.wants(typing):
                inbox.put(typing)


def _up(up: bool) -> None:
    if up:
        log.debug("listening for typing signals")


async def either(first: Awaitable[None], second: Awaitable[None]) -> None:
    """Until one of the two is done (the other is cancelled): a stream waits for new events
    or for a typing signal, whichever comes first."""
    tasks = [asyncio.ensure_future(first), asyncio.ensure_future(second)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
