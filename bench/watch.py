"""Seeing when dialogs reach a state, by polling the dialog list over just the ids awaited.

One loop serves every awaited dialog of a line: it pages ``GET /v1/dialogs`` (database reads,
no workflow queries) from the newest awaited id down to the oldest, so each poll costs rows in
proportion to the dialogs in flight, not to all the dialogs of the line.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from bench.client import Api, ApiCallError
from core.background import in_background

PAGE = 200  # the list endpoint's maximum page
# Between polls. Each poll is an API request (on SQLite it also takes the database's write
# lock), so polling flat out would weigh on the system measured; 20 ms keeps the observer
# to a few percent of a core while adding at most that much to a measured latency.
POLL_S = 0.02

Check = Callable[[dict[str, Any]], bool]


def offered(item: dict[str, Any]) -> bool:
    """The dialog is offered to somebody (what items 1 to 3 wait for)."""
    return bool(item["offered_to"])


class ListWatcher:
    """Timestamps, per awaited dialog, the first poll answer whose row passes its check (an
    upper bound: the change happened before the database was read, after the previous poll
    was asked)."""

    def __init__(self, api: Api, line_id: int) -> None:
        self.api = api
        self.line_id = line_id
        self.awaited: dict[int, Check] = {}
        self.seen: dict[int, tuple[float, dict[str, Any]]] = {}
        self.poll_s: list[float] = []  # how long each page request took
        self.errors = 0

    def expect(self, dialog_id: int, check: Check = offered) -> None:
        """Start watching a dialog until ``check`` passes for its row."""
        self.awaited[dialog_id] = check

    async def wait(self, within: float) -> bool:
        """Until nothing is awaited (True) or ``within`` seconds pass (False)."""
        deadline = time.monotonic() + within
        while self.awaited:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)
        return True

    async def poll_once(self) -> None:
        """One pass over the awaited id range, newest first."""
        if not self.awaited:
            return
        low, high = min(self.awaited), max(self.awaited)
        before = high + 1
        while self.awaited and before > low:
            asked_at = time.time()
            items = await self.api.dialogs_page(self.line_id, before, min(PAGE, before - low))
            answered_at = time.time()
            self.poll_s.append(answered_at - asked_at)
            for item in items:
                check = self.awaited.get(item["id"])
                if check is not None and check(item):
                    del self.awaited[item["id"]]
                    self.seen[item["id"]] = (answered_at, item)
            if not items:
                break
            before = min(item["id"] for item in items)

    async def run(self) -> None:
        """Poll until cancelled; a failed poll is counted and tried again."""
        while True:
            try:
                await self.poll_once()
            except (httpx.HTTPError, ApiCallError):
                self.errors += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(POLL_S)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["ListWatcher"]:
        """The polling loop as a background task for the duration of the block."""
        async with in_background(self.run()):
            yield self
