"""The system under the model-based test (``test_model.py``) and the steps taken on it.

One ``System`` per example: a copy of a migrated SQLite database, a time-skipping test
server, the real worker and relay, and a ``Harness`` on them. Clients write through the API's
filing code; operators act through workflow updates built as ``api/routes/dialog_actions.py``
builds them; admins change operators and lines through the harness. ``settle`` waits until
nothing is moving, so the invariants can be checked on a still picture.
"""

import asyncio
import json
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

import relay
from core.db import create_engine, session_factory
from core.inbound import Filed, InboundMessage, file_client_message
from core.line_settings import LineSettings
from core.models import Channel, Dialog, Line, Message, Outbox
from core.temporal_dev_server import add_search_attributes, find_binary
from tests.workflows.harness import Harness
from worker import build_worker
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import ClientMessage, DialogState, OperatorAction, Reply, Transfer

# A server starts in a second or two, but the machine may be busy (the default is 5 s).
SERVER_STARTUP = timedelta(seconds=60)
# Settling: how often to look, how many equal looks in a row make "quiet", and for how long
# to try before calling the system stuck.
LOOK_EVERY_S = 0.05
EQUAL_LOOKS = 4
SETTLE_TIMEOUT_S = 30.0
# A race holds the database this long: past the workflow task's heartbeat (80 % of its 10 s
# timeout), so the client's message reaches the workflow while the action's local activity
# still runs, and under the activity's 10 s attempt timeout.
RACE_HOLD_S = 9.0
# ... and signals the message this long after sending the action (its workflow task has
# started and its local activity waits for the database by then).
RACE_SIGNAL_S = 2.0
# Handovers a time jump may cause, at most (see ``System.affordable``), and the longest
# stretch of workflow time skipped at once.
HANDOVERS = 150
DAY_S = 86400

ACTIONS = (
    "accept",
    "skip",
    "reply",
    "close",
    "spam",
    "pin",
    "unpin",
    "transfer",
    "transfer_line",
    "intercept",
)
VERBS = {
    "accept": "accepts",
    "skip": "skips",
    "reply": "replies to",
    "close": "closes",
    "spam": "marks as spam",
    "pin": "pins",
    "unpin": "unpins",
    "transfer": "transfers",
    "transfer_line": "transfers",
    "intercept": "intercepts",
}
UPDATES: dict[str, Any] = {
    "accept": DialogWorkflow.accept,
    "skip": DialogWorkflow.skip,
    "reply": DialogWorkflow.reply,
    "close": DialogWorkflow.close,
    "spam": DialogWorkflow.spam,
    "pin": DialogWorkflow.pin,
    "unpin": DialogWorkflow.unpin,
    "transfer": DialogWorkflow.transfer,
    "transfer_line": DialogWorkflow.transfer,
    "intercept": DialogWorkflow.transfer,
}


class NotQuiet(AssertionError):
    """The system did not come to rest: an outbox row stays undelivered or a workflow keeps
    working (a failing workflow task, a loop)."""


@dataclass(frozen=True)
class Act:
    """An operator action as the API sends it; ``actor`` None is a supervisor."""

    action: str
    dialog_id: int
    chat_id: int
    actor: int | None
    to_operator: int | None = None
    to_line: int | None = None

    def __str__(self) -> str:
        who = "supervisor" if self.actor is None else f"operator {self.actor}"
        to = f" to operator {self.to_operator}" if self.to_operator else ""
        to += f" to line {self.to_line}" if self.to_line else ""
        return f"{who} {VERBS[self.action]} dialog {self.dialog_id}{to}"


@dataclass(frozen=True)
class Race:
    """A client message signalled while an action ran, and the action's answer."""

    outcome: str
    update_id: str
    message_id: int


class System:
    """One example's world, on one of two Temporal servers:

    - ``time_skipping``: the test server, whose clock the steps move (days in a moment);
    - otherwise the dev server (``temporal server start-dev``), where the worker can be
      restarted. The test server is never told that a stopped worker's sticky queue is gone
      (a real server is, at shutdown) and never times out a task left there, so after a
      restart the cached workflows' tasks and queries would wait for ever; a worker without
      a cache is no way out (its workflow tasks with local activities time out).
    """

    def __init__(self, template: Path, folder: Path, time_skipping: bool) -> None:
        self.time_skipping = time_skipping
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"model-{uuid.uuid4().hex[:8]}.db"
        shutil.copy(template, self.path)
        url = f"sqlite+aiosqlite:///{self.path}"
        self.engines: list[AsyncEngine] = [create_engine(url), create_engine(url, read_only=True)]
        self.sessions = session_factory(self.engines[0])
        # Checks read a snapshot and never queue behind (or hold up) the worker's writes.
        self.reading = session_factory(self.engines[1])
        self.task_queue = f"model-{uuid.uuid4().hex[:8]}"
        self._env: WorkflowEnvironment | None = None
        self._worker: tuple[Worker, asyncio.Task[None]] | None = None
        self._relay: tuple[asyncio.Event, asyncio.Task[None]] | None = None

    @property
    def env(self) -> WorkflowEnvironment:
        assert self._env is not None
        return self._env

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def harness(self) -> Harness:
        return Harness(self.env, self.sessions, self.task_queue)

    # ---- running -----------------------------------------------------------------------

    async def start(self) -> None:
        # Each example its own runtime, so nothing a stopped worker left behind outlives it.
        if self.time_skipping:
            self._env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=find_binary("temporal-test-server"),
                test_server_startup_timeout=SERVER_STARTUP,
                data_converter=pydantic_data_converter,
                runtime=quiet_runtime(),
            )
        else:
            self._env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=find_binary("temporal"),
                dev_server_startup_timeout=SERVER_STARTUP,
                dev_server_log_level="error",
                data_converter=pydantic_data_converter,
                runtime=quiet_runtime(),
            )
        await add_search_attributes(self.client)
        await self.start_worker()

    async def stop(self) -> None:
        await self.stop_worker()
        if self._env is not None:
            await self._env.shutdown()
        for engine in self.engines:
            await engine.dispose()
        self.path.unlink(missing_ok=True)

    async def start_worker(self) -> None:
        """The worker and its relay, as ``worker.serve`` runs them."""
        built = build_worker(self.client, self.task_queue, self.sessions)
        self._worker = (built, asyncio.create_task(built.run()))
        await self.start_relay()

    async def stop_worker(self) -> None:
        await self.stop_relay()
        if self._worker is not None:
            running, task = self._worker
            self._worker = None
            await running.shutdown()
            await task

    async def start_relay(self) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(self.sessions, self.client, self.task_queue, stop))
        self._relay = (stop, task)

    async def stop_relay(self) -> None:
        if self._relay is not None:
            stop, task = self._relay
            self._relay = None
            stop.set()
            await task

    # ---- a still picture ----------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until quiet: every outbox row delivered, no chat workflow with a workflow task
        scheduled or running, and rows and histories unchanged for ``EQUAL_LOOKS`` looks."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SETTLE_TIMEOUT_S
        previous: Picture | None = None
        equal = 0
        while True:
            picture = await self.picture()
            still = picture.quiet and picture == previous
            equal = equal + 1 if still else 0
            if equal >= EQUAL_LOOKS:
                return
            if loop.time() > give_up:
                raise NotQuiet(
                    f"not quiet after {SETTLE_TIMEOUT_S:.0f} s: {picture.undelivered} outbox "
                    f"rows undelivered; chats with a workflow task to do: {picture.busy}; "
                    f"events in each chat's latest run: {picture.histories}"
                )
            previous = picture
            await asyncio.sleep(LOOK_EVERY_S)

    async def picture(self) -> "Picture":
        """The outbox, the dialog rows and each chat's latest history, as cheaply as they
        can be read (no queries: without a cache each query replays the whole history)."""
        async with self.reading() as session:
            undelivered = await session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.delivered_at.is_(None))
            )
            rows = tuple(
                (d.id, d.chat_id, d.status, d.operator_id, tuple(d.offered_to), d.updated_at)
                for d in await session.scalars(select(Dialog).order_by(Dialog.id))
            )
        histories = []
        for chat_id in sorted({row[1] for row in rows}):
            events = await self.history(chat_id)
            histories.append((chat_id, len(events), pending_workflow_task(events)))
        return Picture(undelivered or 0, rows, tuple(histories))

    async def history(self, chat_id: int) -> list[HistoryEvent]:
        """The events of the chat's latest run (none before the relay started one)."""
        handle = self.client.get_workflow_handle(workflow_id(chat_id))
        try:
            return list((await handle.fetch_history()).events)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            return []

    async def pass_time(self, seconds: int) -> None:
        """Skip workflow time a day at most at a time, settling after each, so the work a
        jump causes stays bounded and a workflow that keeps working is named."""
        left = seconds
        while left > 0:
            step = min(left, DAY_S)
            try:
                await self.harness.sleep(step)
            except RPCError as error:
                picture = await self.picture()
                raise NotQuiet(
                    f"{step} s of workflow time would not pass ({error}); events in each "
                    f"chat's latest run: {picture.histories}"
                ) from None
            left -= step
            await self.settle()

    async def affordable(self, seconds: int) -> int:
        """The part of a time jump the test can afford: each dialog on offer is handed over
        every ``handover_after`` (a workflow task and routing transactions each time), so
        days over short handovers would take minutes of real time."""
        async with self.reading() as session:
            handover = {
                line.id: LineSettings.model_validate(line.settings).queue.handover_after
                for line in await session.scalars(select(Line))
            }
            offered = await session.scalars(
                select(Dialog.line_id).where(
                    Dialog.status.not_in(("closed", "spam")), Dialog.offered_at.is_not(None)
                )
            )
            rate = sum(1 / handover[line_id] for line_id in offered)
        if rate * seconds <= HANDOVERS:
            return seconds
        return max(1, int(HANDOVERS / rate))

    # ---- clients ------------------------------------------------------------------------

    async def client_writes(
        self, channel: Channel, chat: str, external_id: str, words: str
    ) -> Filed:
        """File a client message as ``POST /v1/channels/{id}/messages`` does."""
        inbound = InboundMessage.model_validate(
            {"chat": {"external_id": chat}, "message": {"external_id": external_id, "text": words}}
        )
        return await file_client_message(self.sessions, channel, inbound)

    async def deliver_again(self, closed_first: bool, pick: int) -> str:
        """Mark a delivered client message's outbox row undelivered, as a relay that died
        before marking it would leave it; the relay sends it again."""
        async with self.sessions() as session, session.begin():
            rows = list(
                await session.execute(
                    select(Outbox.id, Dialog.id, Dialog.status)
                    .join(Dialog, Dialog.id == Outbox.dialog_id)
                    .where(Outbox.kind == "message", Outbox.delivered_at.is_not(None))
                    .order_by(Outbox.id)
                )
            )
            closed = [row for row in rows if row[2] in ("closed", "spam")]
            choices = closed if closed_first and closed else rows
            if not choices:
                return "no delivered message yet"
            outbox_id, dialog_id, status = choices[pick % len(choices)]
            await session.execute(
                update(Outbox)
                .where(Outbox.id == outbox_id)
                .values(delivered_at=None, claimed_until=None)
            )
        return f"outbox row {outbox_id} of {status} dialog {dialog_id} delivered again"

    # ---- operators ----------------------------------------------------------------------

    async def dialog_of(self, chat_id: int, first: bool = False) -> Dialog:
        """The chat's latest dialog (``first``: its first)."""
        async with self.reading() as session:
            order = Dialog.id if first else Dialog.id.desc()
            query = select(Dialog).where(Dialog.chat_id == chat_id).order_by(order).limit(1)
            dialog = await session.scalar(query)
        assert dialog is not None, f"chat {chat_id} has no dialog"
        return dialog

    async def act(self, act: Act, update_id: str | None = None) -> str:
        """Send the action as the API does; a refusal (409) is an answer, not an error."""
        argument: OperatorAction
        message_id = None
        if act.action == "reply":
            message_id = await self.operator_message(act)
            argument = Reply(dialog_id=act.dialog_id, operator_id=act.actor, message_id=message_id)
        elif act.action in ("transfer", "transfer_line", "intercept"):
            argument = Transfer(
                dialog_id=act.dialog_id,
                by_supervisor=act.actor is None,
                operator_id=act.actor,
                to_operator_id=act.to_operator,
                to_line_id=act.to_line,
            )
        else:
            argument = OperatorAction(
                dialog_id=act.dialog_id, operator_id=act.actor, by_supervisor=act.actor is None
            )
        handle = self.client.get_workflow_handle_for(DialogWorkflow.run, workflow_id(act.chat_id))
        try:
            state: DialogState = await handle.execute_update(
                UPDATES[act.action], argument, id=update_id
            )
        except (WorkflowUpdateFailedError, RPCError) as error:
            if isinstance(error, RPCError) and not ended(error):
                raise
            if message_id is not None:  # the API removes a refused reply's message
                async with self.sessions() as session, session.begin():
                    await session.execute(delete(Message).where(Message.id == message_id))
            cause = error.cause if isinstance(error, WorkflowUpdateFailedError) else error
            return f"refused ({cause})"
        return f"done: {state.status}, operator {state.operator_id}"

    async def operator_message(self, act: Act) -> int:
        """The reply's text, stored before the update as the API stores it."""
        async with self.sessions() as session, session.begin():
            message = Message(
                chat_id=act.chat_id,
                dialog_id=act.dialog_id,
                author="operator",
                operator_id=act.actor,
                text="An answer",
            )
            session.add(message)
            await session.flush()
            return message.id

    async def race(self, act: Act, channel: Channel, chat: str, external_id: str) -> Race:
        """The client writes while the action's local activity runs: the database is held so
        the activity waits past a workflow task heartbeat, and the message is signalled as the
        relay signals it meanwhile."""
        await self.stop_relay()  # the message must reach the workflow during the action only
        filed = await self.client_writes(channel, chat, external_id, "Wait, one more thing")
        update_id = f"race-{uuid.uuid4().hex[:8]}"
        handle = self.client.get_workflow_handle_for(DialogWorkflow.run, workflow_id(act.chat_id))
        async with self.sessions() as holding:
            await holding.execute(text("SELECT 1"))  # BEGIN IMMEDIATE: the write lock
            acting = asyncio.create_task(self.act(act, update_id))
            await asyncio.wait([acting], timeout=RACE_SIGNAL_S)
            if acting.done():  # refused by its validator: no activity to race with
                await holding.rollback()
                await self.start_relay()
                return Race(acting.result(), update_id, filed.message_id)
            message = ClientMessage(
                message_id=filed.message_id, dialog_id=filed.dialog_id, sent_at=datetime.now(UTC)
            )
            try:
                await handle.signal(DialogWorkflow.client_message, message)
            except RPCError as error:
                if not ended(error):
                    raise
            await asyncio.sleep(RACE_HOLD_S - RACE_SIGNAL_S)
            await holding.rollback()
        outcome = await acting
        await self.start_relay()
        return Race(f"{outcome} (dialog {filed.dialog_id})", update_id, filed.message_id)

    async def during(self, chat_id: int, update_id: str, message_id: int) -> bool:
        """Whether the workflow got the client's message while the update ran: signalled
        after the update was accepted and before it completed."""
        events = await self.history(chat_id)
        order = [event_key(event) for event in events]
        accepted = ("accepted", update_id)
        completed = ("completed", update_id)
        signalled = ("signal", str(message_id))
        if not {accepted, completed, signalled} <= set(order):
            return False
        return order.index(accepted) < order.index(signalled) < order.index(completed)


def quiet_runtime() -> Runtime:
    """A Temporal runtime that logs errors only, as ``conftest.QUIET`` (the test server is
    not a full server and the SDK warns about it)."""
    logging = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    return Runtime(telemetry=TelemetryConfig(logging=logging))


def ended(error: RPCError) -> bool:
    """The chat has no running run (the API answers 409 with the dialog's status)."""
    return error.status == RPCStatusCode.NOT_FOUND or "already completed" in error.message


def pending_workflow_task(events: Sequence[HistoryEvent]) -> bool:
    """A workflow task is scheduled or running: the workflow has work it has not done."""
    scheduled = finished = 0
    for event in events:
        if event.HasField("workflow_task_scheduled_event_attributes"):
            scheduled += 1
        elif (
            event.HasField("workflow_task_completed_event_attributes")
            or event.HasField("workflow_task_failed_event_attributes")
            or event.HasField("workflow_task_timed_out_event_attributes")
        ):
            finished += 1
    return scheduled > finished


def event_key(event: HistoryEvent) -> tuple[str, str]:
    """Updates by id and client messages by message id, to tell their order in history."""
    if event.HasField("workflow_execution_update_accepted_event_attributes"):
        accepted = event.workflow_execution_update_accepted_event_attributes
        return ("accepted", accepted.accepted_request.meta.update_id)
    if event.HasField("workflow_execution_update_completed_event_attributes"):
        return (
            "completed",
            event.workflow_execution_update_completed_event_attributes.meta.update_id,
        )
    if event.HasField("workflow_execution_signaled_event_attributes"):
        signal = event.workflow_execution_signaled_event_attributes
        if signal.signal_name == "client_message" and signal.input.payloads:
            return ("signal", str(json.loads(signal.input.payloads[0].data)["message_id"]))
    return ("", "")


@dataclass(frozen=True)
class Picture:
    """What must stop changing before the system counts as quiet."""

    undelivered: int
    rows: tuple[tuple[object, ...], ...]
    histories: tuple[tuple[int, int, bool], ...]  # chat id, events, a workflow task pending

    @property
    def busy(self) -> list[int]:
        return [chat_id for chat_id, _, pending in self.histories if pending]

    @property
    def quiet(self) -> bool:
        return self.undelivered == 0 and not self.busy
