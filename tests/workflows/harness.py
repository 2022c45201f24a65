"""Test helpers: set up lines and operators in the database, let clients write through the
same filing code as the API, and watch the dialog workflows on the time-skipping server."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from itertools import count
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from core import lines, operators
from core.inbound import InboundMessage, file_client_message
from core.line_settings import LineSettings, Member
from core.models import (
    Agreement,
    AgreementVersion,
    Channel,
    Consent,
    Dialog,
    Line,
    Message,
    Operator,
)
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import ClientRating, DialogState, OperatorAction, Reply

_ids = count(1)
Row = TypeVar("Row")


def on_time(actual: datetime | None, deadline: datetime) -> bool:
    """A timer fired within 1 s of its deadline (activities take real time meanwhile)."""
    return actual is not None and deadline <= actual < deadline + timedelta(seconds=1)


class Harness:
    def __init__(
        self,
        env: WorkflowEnvironment,
        sessions: async_sessionmaker[AsyncSession],
        task_queue: str,
    ) -> None:
        self.env = env
        self.sessions = sessions
        self.task_queue = task_queue

    async def now(self) -> datetime:
        return await self.env.get_current_time()

    async def operators(self, n: int, **fields: Any) -> list[int]:
        """``n`` operators, online with their workday started unless ``fields`` say otherwise."""
        defaults: dict[str, Any] = {"presence": "online", "workday": "started"}
        async with self.sessions() as session, session.begin():
            name = fields.pop("name", None)
            rows = [
                Operator(name=name or f"Operator {i}", **{**defaults, **fields}) for i in range(n)
            ]
            session.add_all(rows)
            await session.flush()
            return [row.id for row in rows]

    async def update_operator(self, operator_id: int, **fields: Any) -> None:
        """``operator_changes`` for a caller that needs no answer."""
        await self.operator_changes(operator_id, **fields)

    async def operator_changes(self, operator_id: int, **fields: Any) -> set[int]:
        """Change an operator as the API does (``core.operators.change``: the row and the
        routing that follows from it in one transaction), at workflow time. Returns the dialogs
        owed a wake-up; the relay delivers them."""
        async with self.operator_changing(operator_id, **fields) as woken:
            pass
        return woken

    @asynccontextmanager
    async def operator_changing(self, operator_id: int, **fields: Any) -> AsyncIterator[set[int]]:
        """``operator_changes`` with the transaction held open (and the line locked) while the
        body runs: to see what reaches the workflows in the meantime."""
        now = await self.now()
        async with self.sessions() as session, session.begin():
            operator = await session.get(Operator, operator_id)
            assert operator is not None
            yield await operators.change(session, operator, now, **fields)

    async def line(
        self, members: list[int], settings: dict[str, Any] | None = None, **queue: Any
    ) -> Channel:
        """A line whose queue lists ``members`` in order, with an `api` channel; ``settings``
        holds the other groups."""
        line_settings = LineSettings.model_validate(
            {
                "name": "Test line",
                **(settings or {}),
                "queue": {"members": [{"type": "operator", "id": m} for m in members], **queue},
            }
        )
        async with self.sessions() as session, session.begin():
            line = Line(settings=line_settings.dump())
            session.add(line)
            await session.flush()
            channel = Channel(line_id=line.id, type="api", config={}, secret="secret")
            session.add(channel)
            await session.flush()
            return channel

    async def channel(self, line_id: int, type: str, **config: Any) -> Channel:
        """Another channel of the line (one of each type per line)."""
        async with self.sessions() as session, session.begin():
            channel = Channel(line_id=line_id, type=type, config=config, secret="secret")
            session.add(channel)
            await session.flush()
            return channel

    async def change_settings(self, line_id: int, patch: dict[str, Any]) -> None:
        """Change a line's settings as ``PATCH /v1/lines/{id}`` does (groups merge)."""
        async with self.sessions() as session, session.begin():
            line = await session.get(Line, line_id)
            assert line is not None
            await lines.update_settings(session, line, patch, await self.now())

    async def agreement(self, text: str, version: int = 1) -> int:
        """An agreement at ``version``, with that version's text."""
        async with self.sessions() as session, session.begin():
            agreement = Agreement(name="Personal data", text=text, version=version)
            session.add(agreement)
            await session.flush()
            session.add(AgreementVersion(agreement_id=agreement.id, version=version, text=text))
            return agreement.id

    async def consents(self, agreement_id: int) -> list[Consent]:
        async with self.sessions() as session:
            query = select(Consent).where(Consent.agreement_id == agreement_id)
            return list(await session.scalars(query.order_by(Consent.id)))

    async def messages(self, dialog_id: int) -> list[tuple[str, str]]:
        """The dialog's history as ``(author, text)``, oldest first: what the client sees."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Message).where(Message.dialog_id == dialog_id).order_by(Message.id)
            )
            return [(m.author, m.text) for m in rows]

    async def texts_received(self, dialog_id: int) -> list[str]:
        """The automatic texts the client got in the dialog, oldest first."""
        return [text for author, text in await self.messages(dialog_id) if author == "system"]

    async def dialog_row(
        self, dialog_id: int, check: Callable[[Dialog], bool] = lambda _: True
    ) -> Dialog:
        """The dialog's row once ``check`` holds (at once, without one)."""
        deadline = asyncio.get_running_loop().time() + 10.0
        while True:
            async with self.sessions() as session:
                row = await session.get(Dialog, dialog_id)
            assert row is not None
            if check(row):
                return row
            assert asyncio.get_running_loop().time() < deadline, f"row never matched: {row}"
            await asyncio.sleep(0.02)

    async def rate(self, handle: WorkflowHandle[Any, Any], value: str) -> DialogState:
        """The web chat's like / dislike button while the dialog is closing."""
        state = await self.state(handle)
        rating = ClientRating.model_validate({"dialog_id": state.dialog_id, "value": value})
        result: DialogState = await handle.execute_update(DialogWorkflow.rate, rating)
        return result

    async def set_members(self, line_id: int, members: list[int]) -> None:
        """Change a line's queue as ``PATCH /v1/lines/{id}`` does, rebalancing its offers."""
        async with self.sessions() as session, session.begin():
            line = await session.get(Line, line_id)
            assert line is not None
            queue = [Member(type="operator", id=m) for m in members]
            await lines.set_members(session, line, queue, await self.now())

    async def answered(
        self, settings: dict[str, Any]
    ) -> tuple[Channel, WorkflowHandle[Any, Any], int, DialogState]:
        """A dialog in chat ``chat-1`` that the only operator of a fresh line (``settings``
        for its other groups) has answered: the channel, the handle, the operator, the state."""
        (operator,) = await self.operators(1)
        channel = await self.line([operator], settings, handover_after=3600)
        dialog = await self.client_writes(channel, "chat-1")
        await self.offered(dialog, [operator])
        return channel, dialog, operator, await self.reply(dialog, operator)

    async def client_writes(
        self, channel: Channel, chat: str, text: str = "Hello", **client: str
    ) -> WorkflowHandle[Any, Any]:
        """File a client message as the API does; the relay delivers it to the workflow.
        ``client`` gives the chat's name, phone or email."""
        inbound = InboundMessage.model_validate(
            {
                "chat": {"external_id": chat, **client},
                "message": {"external_id": f"m-{next(_ids)}", "text": text},
            }
        )
        filed = await file_client_message(self.sessions, channel, inbound)
        return self.env.client.get_workflow_handle_for(
            DialogWorkflow.run, workflow_id(filed.chat_id)
        )

    async def result(self, handle: WorkflowHandle[Any, Any]) -> DialogState:
        """Wait for the dialog to end, skipping workflow time as needed.

        Handles made by ``get_workflow_handle`` do not skip time on their own (only those
        returned by ``start_workflow`` do), so unlock time skipping around the wait. A dialog
        that never ends (an activity failing for ever) fails the test after two minutes
        instead of hanging the suite.
        """
        async with self.env.time_skipping_unlocked():  # type: ignore[attr-defined]
            try:
                result: DialogState = await asyncio.wait_for(handle.result(), timeout=120)
            except TimeoutError:
                raise AssertionError(f"dialog {handle.id} never ended") from None
        return result

    async def state(self, handle: WorkflowHandle[Any, Any]) -> DialogState:
        result: DialogState = await handle.query(DialogWorkflow.state)
        return result

    async def eventually(
        self,
        handle: WorkflowHandle[Any, Any],
        check: Callable[[DialogState], bool],
        timeout_s: float = 10.0,
    ) -> DialogState:
        """The state once ``check`` holds. Workflow time stands still while this polls."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                state = await self.state(handle)
                if check(state):
                    return state
            except RPCError:
                state = None  # the relay has not started the workflow yet
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"condition never held; last state: {state}")
            await asyncio.sleep(0.02)

    async def until(
        self, rows: Callable[[], Awaitable[list[Row]]], n: int, timeout_s: float = 10.0
    ) -> list[Row]:
        """``rows()`` once it returns ``n`` rows (work the worker does apart from a dialog)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(found := await rows()) != n:
            assert asyncio.get_running_loop().time() < deadline, f"{len(found)} rows, not {n}"
            await asyncio.sleep(0.02)
        return found

    async def row(self, handle: WorkflowHandle[Any, Any]) -> Dialog:
        """The dialog's row in the database (the projection and the offer routing made)."""
        dialog_id = (await self.state(handle)).dialog_id
        async with self.sessions() as session:
            row = await session.get(Dialog, dialog_id)
            assert row is not None
            return row

    async def row_shows(self, handle: WorkflowHandle[Any, Any], status: str) -> Dialog:
        """Wait until the dialog row shows ``status``: the workflow has written its state to
        the database, where routing counts every operator's load."""
        await self.eventually(handle, lambda s: s.status == status)
        deadline = asyncio.get_running_loop().time() + 10.0
        while (row := await self.row(handle)).status != status:
            assert asyncio.get_running_loop().time() < deadline, f"row stays {row.status}"
            await asyncio.sleep(0.02)
        return row

    async def waiting(self, handle: WorkflowHandle[Any, Any]) -> DialogState:
        """Wait until the dialog waits in its queue with nobody to offer it to. Routing
        decides in the database, so the row is checked first; then the workflow's state."""
        await self.eventually(handle, lambda s: s.status == "queued")
        deadline = asyncio.get_running_loop().time() + 10.0
        while (row := await self.row(handle)).waiting_since is None:
            assert asyncio.get_running_loop().time() < deadline, f"never queued: {row.status}"
            await asyncio.sleep(0.02)
        assert row.offered_to == [], f"offered to {row.offered_to}"
        return await self.eventually(handle, lambda s: (s.status, s.offered_to) == ("queued", []))

    async def offered(self, handle: WorkflowHandle[Any, Any], expected: list[int]) -> DialogState:
        return await self.eventually(handle, lambda s: s.offered_to == expected)

    async def sleep(self, seconds: float) -> None:
        """Advance workflow time (the test server skips it)."""
        await self.env.sleep(timedelta(seconds=seconds))

    async def _act(
        self, handle: WorkflowHandle[Any, Any], update: Any, operator_id: int
    ) -> DialogState:
        """Run an operator action on the dialog, as that operator."""
        state = await self.state(handle)
        result: DialogState = await handle.execute_update(
            update, OperatorAction(dialog_id=state.dialog_id, operator_id=operator_id)
        )
        return result

    async def accept(self, handle: WorkflowHandle[Any, Any], operator_id: int) -> DialogState:
        return await self._act(handle, DialogWorkflow.accept, operator_id)

    async def skip(self, handle: WorkflowHandle[Any, Any], operator_id: int) -> DialogState:
        return await self._act(handle, DialogWorkflow.skip, operator_id)

    async def reply(
        self, handle: WorkflowHandle[Any, Any], operator_id: int, message_id: int = 0
    ) -> DialogState:
        state = await self.state(handle)
        result: DialogState = await handle.execute_update(
            DialogWorkflow.reply,
            Reply(dialog_id=state.dialog_id, operator_id=operator_id, message_id=message_id),
        )
        return result

    async def close(self, handle: WorkflowHandle[Any, Any], operator_id: int) -> DialogState:
        return await self._act(handle, DialogWorkflow.close, operator_id)

    async def closed_for_good(
        self, handle: WorkflowHandle[Any, Any], operator_id: int, dialog_id: int
    ) -> None:
        """The operator closes the dialog (close text and rating request go out) and it ends
        closed for the operator's reason, in the workflow and in its row (at once with
        ``rating_wait`` 0, after it otherwise)."""
        closing = await self.close(handle, operator_id)
        assert closing.dialog_id == dialog_id
        result = await self.result(handle)
        assert (result.dialog_id, result.status, result.close_reason) == (
            dialog_id,
            "closed",
            "operator",
        )
        row = await self.dialog_row(dialog_id)
        assert (row.status, row.close_reason) == ("closed", "operator")

    @staticmethod
    async def refused(action: Awaitable[object]) -> str:
        """The reason the dialog gave for refusing an operator action (its update failed)."""
        try:
            await action
        except WorkflowUpdateFailedError as error:
            return str(error.cause)
        raise AssertionError("the action was not refused")
