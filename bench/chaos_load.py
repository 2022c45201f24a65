"""The chaos run's client side: inbound messages at a steady rate, each retried with the same
external id until it gets a 2xx, an operator's action, and a count of every answer by status.

A chat sends its messages in order (the next once the previous was taken), as a channel
would; the chats together keep the rate. A request that gets no answer (the API is down, the
connection broke, the attempt's timeout passed) is counted by what happened instead. Every
``drop_every``-th message's first answer is not waited for (the request is sent, the client
stops reading), as when a connection breaks after the API committed: its retry must be
answered as a duplicate, and the message stored once.
"""

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from api.errors import PROBLEM_JSON
from bench.client import Api, Line

RETRY_FIRST_S = 0.25  # the first wait before a retry; it doubles up to RETRY_MAX_S
RETRY_MAX_S = 2.0
RETRY_AFTER_MAX_S = 5.0  # a Retry-After is followed, up to this
DROPPED = "dropped by the client"  # the outcome of an answer the client did not wait for
DROP_READ_S = 0.001  # how long such a request waits for its answer once sent


def no_answer(error: httpx.HTTPError) -> str:
    """How a request without an answer ended, as it is counted."""
    return "timeout" if isinstance(error, httpx.TimeoutException) else type(error).__name__


class StatusLog:
    """Every answer of the API by status (an httpx response hook on the run's client), and
    whether each 503 came as problem details with ``Retry-After``."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.bad_503: list[str] = []  # what each 503 lacked

    def attach(self, api: Api) -> None:
        api.http.event_hooks["response"].append(self._seen)

    async def _seen(self, response: httpx.Response) -> None:
        self.counts[str(response.status_code)] += 1
        if response.status_code == 503:
            lacks = []
            if "retry-after" not in response.headers:
                lacks.append("Retry-After")
            if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
                lacks.append(PROBLEM_JSON)
            if lacks:
                self.bad_503.append(f"{response.request.url.path}: no {', no '.join(lacks)}")

    def failed(self, error: httpx.HTTPError) -> None:
        self.counts[no_answer(error)] += 1


@dataclass(frozen=True)
class Attempt:
    """One POST of one message: when it started (s into the load) and how it ended."""

    started: float
    elapsed: float
    outcome: str  # the status code, or how it got no answer
    retry: bool  # not the message's first attempt


@dataclass(frozen=True)
class Taken:
    """The 2xx a message finally got, with the ids it names."""

    chat: str
    message: str
    dialog_id: int
    chat_id: int
    message_id: int
    duplicate: bool
    attempts: int


@dataclass
class InboundLoad:
    """``rate`` messages a second for ``duration_s`` over ``chats`` chats of one line."""

    api: Api
    line: Line
    statuses: StatusLog
    rate: float
    duration_s: float
    chats: int
    attempt_timeout_s: float
    drop_every: int = 10
    prefix: str = "chaos"
    started_at: float = 0.0  # time.monotonic() when the first message was due
    attempts: list[Attempt] = field(default_factory=list)
    taken: dict[tuple[str, str], Taken] = field(default_factory=dict)
    false_duplicates: list[str] = field(default_factory=list)  # duplicate at the 1st try
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return max(1, round(self.rate * self.duration_s))

    def key(self, seq: int) -> tuple[str, str]:
        """Message ``seq``'s chat and message external ids."""
        return f"{self.prefix}-{seq % self.chats}", f"m-{seq // self.chats}"

    async def run(self, started_at: float) -> None:
        """Issue every message at its time (``started_at`` is ``time.monotonic()``); returns
        when the last was issued, while earlier ones may still be retrying."""
        self.started_at = started_at
        for seq in range(self.count):
            delay = started_at + seq / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            previous = self._tasks[seq - self.chats] if seq >= self.chats else None
            self._tasks.append(asyncio.create_task(self._deliver(seq, previous)))

    async def finish(self, within_s: float) -> int:
        """Wait up to ``within_s`` for every message to be taken; the number never taken
        (their retries are stopped)."""
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=within_s)
        left = [task for task in self._tasks if not task.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.count - len(self.taken)

    async def _deliver(self, seq: int, previous: asyncio.Task[None] | None) -> None:
        """Message ``seq``, after its chat's previous one, POSTed until it gets a 2xx."""
        if previous is not None:
            await asyncio.wait([previous])  # in order within the chat, whatever it ended with
        chat, message = self.key(seq)
        text = f"chaos message {message} of {chat}"
        wait = RETRY_FIRST_S
        for attempt in itertools.count(1):
            drop = attempt == 1 and seq % self.drop_every == self.drop_every // 2
            limit = httpx.Timeout(self.attempt_timeout_s)
            if drop:
                limit = httpx.Timeout(self.attempt_timeout_s, read=DROP_READ_S)
            started = time.monotonic()
            try:
                response = await self.api.inbound_response(self.line, chat, message, text, limit)
            except httpx.HTTPError as error:
                if drop and isinstance(error, httpx.ReadTimeout):
                    self._attempt(started, DROPPED, retry=False)
                else:
                    self.statuses.failed(error)
                    self._attempt(started, no_answer(error), attempt > 1)
            else:
                self._attempt(started, str(response.status_code), attempt > 1)
                if response.is_success:
                    self._taken(chat, message, response.json(), attempt)
                    return
                retry_after = _retry_after(response)
                if retry_after is not None:
                    wait = retry_after
            await asyncio.sleep(min(wait, RETRY_AFTER_MAX_S))
            wait = min(wait * 2, RETRY_MAX_S)

    def _attempt(self, started: float, outcome: str, retry: bool) -> None:
        elapsed = time.monotonic() - started
        self.attempts.append(Attempt(started - self.started_at, elapsed, outcome, retry))

    def _taken(self, chat: str, message: str, body: dict[str, Any], attempts: int) -> None:
        taken = Taken(
            chat=chat,
            message=message,
            dialog_id=int(body["dialog_id"]),
            chat_id=int(body["chat_id"]),
            message_id=int(body["message_id"]),
            duplicate=bool(body["duplicate"]),
            attempts=attempts,
        )
        self.taken[chat, message] = taken
        if taken.duplicate and attempts == 1:
            self.false_duplicates.append(f"{chat}/{message}")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class ActionAnswer:
    """What an operator action got: the status (or how it got none), how soon, the headers
    a 503 should carry."""

    outcome: str
    elapsed: float
    retry_after: str | None = None
    content_type: str | None = None
    detail: str = ""


async def act(
    api: Api, statuses: StatusLog, dialog_id: int, action: str, body: dict[str, Any], wait_s: float
) -> ActionAnswer:
    """``POST /v1/dialogs/{id}/{action}``, waiting up to ``wait_s`` for the answer."""
    started = time.monotonic()
    try:
        response = await api.http.post(
            f"/v1/dialogs/{dialog_id}/{action}", json=body, timeout=wait_s
        )
    except httpx.HTTPError as error:
        statuses.failed(error)
        return ActionAnswer(no_answer(error), time.monotonic() - started)
    return ActionAnswer(
        str(response.status_code),
        time.monotonic() - started,
        response.headers.get("retry-after"),
        response.headers.get("content-type"),
        response.text[:200],
    )
