"""Item 3's yardstick driven like openlines: signal-with-start bare workflows at a rate and
see each done when its activity has run (read from the bare worker's file)."""

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError

from bench.bare import START_SIGNAL, WORKFLOW
from bench.load import Outcome
from core.background import in_background

POLL_S = 0.01

_steps = itertools.count(1)


class DoneLog:
    """The bare worker's file of finished activities, read as it grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = ""
        self.done: dict[str, float] = {}

    def read_new(self) -> None:
        if not self.path.exists():
            return
        with self.path.open() as log:
            log.seek(self.offset)
            chunk = log.read()
            self.offset = log.tell()
        lines = (self.partial + chunk).split("\n")
        self.partial = lines.pop()
        for line in lines:
            workflow_id, _, at = line.partition(" ")
            self.done.setdefault(workflow_id, float(at))

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator["DoneLog"]:
        """Keep reading new lines in the background for the duration of the block."""

        async def follow() -> None:
            while True:
                self.read_new()
                await asyncio.sleep(POLL_S)

        try:
            async with in_background(follow()):
                yield self
        finally:
            self.read_new()  # what was written before the task ended


class BareSink:
    """Starts one bare workflow per ``send``; done when its activity has run."""

    def __init__(self, client: Client, task_queue: str, log: DoneLog, prefix: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.log = log
        self.prefix = prefix
        self.sent = 0
        self.failed = 0
        self.taken: dict[str, tuple[float, float]] = {}
        self.pending: set[str] = set()

    async def send(self, seq: int) -> None:
        self.sent += 1
        workflow_id = f"bare-{self.prefix}-{seq}"
        sent_at = time.time()
        try:
            await self.client.start_workflow(
                WORKFLOW,
                id=workflow_id,
                task_queue=self.task_queue,
                start_signal=START_SIGNAL,
                start_signal_args=[seq],
            )
        except RPCError:
            self.failed += 1
            return
        self.taken[workflow_id] = (sent_at, time.time())
        self.pending.add(workflow_id)

    def observing(self) -> AbstractAsyncContextManager[Any]:
        return self.log.following()

    async def drained(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while True:
            self.pending = {w for w in self.pending if w not in self.log.done}
            if not self.pending:
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(POLL_S)

    def outcome(self) -> Outcome:
        out = Outcome(
            sent=self.sent, failed=self.failed, observer={"read": "the bare worker's file"}
        )
        for workflow_id, (sent_at, taken_at) in self.taken.items():
            out.request.append(taken_at - sent_at)
            if (done_at := self.log.done.get(workflow_id)) is not None:
                out.from_taken.append(max(0.0, done_at - taken_at))
                out.from_sent.append(done_at - sent_at)
        return out


def new_bare_sink(client: Client, task_queue: str, log: DoneLog) -> BareSink:
    """A sink whose workflow ids are unique to this step."""
    return BareSink(client, task_queue, log, f"step{next(_steps)}")
