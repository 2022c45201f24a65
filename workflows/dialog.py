"""DialogWorkflow: one customer dialog, from the client's first message until it closes.

Every dialog of a chat runs under the chat's workflow id, so the Temporal UI lists a chat's
whole history in one place. Read top to bottom: the state, the client's signals, the
operators' actions (updates: the API needs the answer), then the main loop that waits for the
next event or the nearest deadline.

Who may accept the dialog is decided by the routing transaction in the database (it sees
every operator's load); the workflow asks for offers, keeps the handover and expiry timers,
and owns the status.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dialogs import DialogActivities
    from workflows import search_attributes as sa
    from workflows.models import (
        FINAL_STATUSES,
        ClientMessage,
        CloseReason,
        DialogStart,
        DialogState,
        OperatorAction,
        Projection,
        Reply,
        Routing,
        RoutingRequest,
        Status,
        Transfer,
    )

Arg = TypeVar("Arg")
Result = TypeVar("Result")
ActionT = TypeVar("ActionT", bound=OperatorAction)

# A dialog nobody answers is closed this long after the client's last unanswered message.
EXPIRY = timedelta(days=30)
ACTIVITY_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)


def workflow_id(chat_id: int) -> str:
    """The id every dialog of a chat runs under."""
    return f"chat-{chat_id}"


class Conflict(ApplicationError):
    """The dialog's state does not allow the action (HTTP 409)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="Conflict", non_retryable=True)


@workflow.defn
class DialogWorkflow:
    @workflow.init
    def __init__(self, start: DialogStart) -> None:
        self._state = DialogState(
            dialog_id=start.dialog_id,
            chat_id=start.chat_id,
            line_id=start.line_id,
            channel_type=start.channel_type,
            status="new",
        )
        self._routing: Routing | None = None
        self._needs_queue = True  # a new dialog goes to the queue on the first loop turn
        self._wake = False
        self._check_owner = False
        self._line_deleted = False
        self._dirty = True  # the projection in the database is behind
        self._next_dialog: list[ClientMessage] = []  # messages for the chat's next dialog
        self._published: tuple[object, ...] | None = None
        self._lock = asyncio.Lock()  # one activity-backed change at a time
        for message in start.pending:
            self.client_message(message)

    # ---- reads --------------------------------------------------------------------------

    @workflow.query
    def state(self) -> DialogState:
        """The full state of the dialog, for ops and for the API."""
        return self._current()

    def _current(self) -> DialogState:
        """The state with its deadlines worked out afresh (what queries and actions return)."""
        self._state.deadlines = self._deadlines()
        return self._state

    # ---- the client ---------------------------------------------------------------------

    @workflow.signal
    def client_message(self, message: ClientMessage) -> None:
        """A client message, committed to the database before it was signalled.

        The relay may deliver a message twice; an id seen before is ignored. A message filed
        under a later dialog of this chat (this one closed in between) starts that dialog as
        the next run.
        """
        state = self._state
        if message.dialog_id != state.dialog_id:
            if message.dialog_id > state.dialog_id and message not in self._next_dialog:
                self._next_dialog.append(message)
            return
        if message.message_id in state.seen_message_ids or state.status in FINAL_STATUSES:
            return
        state.seen_message_ids.append(message.message_id)
        # Timers count from when the workflow got the message (milliseconds after it was
        # filed, unless Temporal was down), so workflow time alone decides every deadline.
        state.unanswered_since = workflow.now()
        if state.operator_id is not None and self._routing and self._routing.check_availability:
            self._check_owner = True  # is the owner still there to answer?
        if state.status in ("accepted", "client_waiting", "closing"):
            state.status = "client_waiting"
        elif state.status in ("operator_replied", "client_followup"):
            state.status = "client_followup"
        self._dirty = True

    @workflow.signal
    def line_deleted(self, dialog_id: int) -> None:
        """The dialog's line was deleted with ``force``: close silently."""
        if dialog_id == self._state.dialog_id:
            self._line_deleted = True

    @workflow.signal
    def wake(self) -> None:
        """The dialog's offer changed in the database (an operator came or went)."""
        self._wake = True

    # ---- operators ----------------------------------------------------------------------

    @workflow.update
    async def accept(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            await self._accept(action)
            return self._current()

    @accept.validator
    def _validate_accept(self, action: OperatorAction) -> None:
        self._require_offered(action)

    @workflow.update
    async def skip(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            routing = await self._run(DialogActivities.skip, self._stamped(action))
            self._state.status = "queued"
            self._state.operator_id = None
            self._apply(routing)
            return self._current()

    @skip.validator
    def _validate_skip(self, action: OperatorAction) -> None:
        self._require_open()
        state = self._state
        if action.operator_id != state.operator_id and action.operator_id not in state.offered_to:
            raise ValueError(
                f"dialog {state.dialog_id} is neither offered to nor held by operator "
                f"{action.operator_id}"
            )

    @workflow.update
    async def reply(self, reply: Reply) -> DialogState:
        """An operator's message (already stored by the API); accepts an unaccepted dialog."""
        async with self._lock:
            outcome = await self._run(DialogActivities.reply, self._stamped(reply))
            if outcome.routing is not None:
                self._apply(outcome.routing)  # the line's state, and the owner if it accepted
            if not outcome.ok:
                raise Conflict(outcome.reason)
            state = self._state
            state.operator_id = reply.operator_id
            state.status = "operator_replied"
            state.answered = True
            state.unanswered_since = None
            self._dirty = True
            return self._current()

    @reply.validator
    def _validate_reply(self, reply: Reply) -> None:
        self._require_open()
        state = self._state
        if not state.line_active:
            raise ValueError(f"line {state.line_id} is inactive: replies are refused")
        if state.operator_id != reply.operator_id:
            self._require_offered(reply)

    @workflow.update
    async def transfer(self, transfer: Transfer) -> DialogState:
        """To an operator, who owns it at once, or to another line's queue."""
        async with self._lock:
            outcome = await self._run(DialogActivities.transfer, self._stamped(transfer))
            if not outcome.ok or outcome.routing is None:
                raise Conflict(outcome.reason)
            state = self._state
            state.operator_id = outcome.routing.operator_id
            state.line_id = outcome.routing.line_id
            state.status = "accepted" if state.operator_id else "queued"
            self._apply(outcome.routing)
            return self._current()

    @transfer.validator
    def _validate_transfer(self, transfer: Transfer) -> None:
        self._require_owner_or_supervisor(transfer)
        state = self._state
        if (transfer.to_operator_id is None) == (transfer.to_line_id is None):
            raise ValueError("name either an operator or a line to transfer to")
        if transfer.to_operator_id is not None and transfer.to_operator_id == state.operator_id:
            raise ValueError(
                f"dialog {state.dialog_id} is already held by operator {state.operator_id}"
            )
        if transfer.to_line_id is not None and transfer.to_line_id == state.line_id:
            raise ValueError(f"dialog {state.dialog_id} is already in line {state.line_id}")

    @workflow.update
    async def spam(self, action: OperatorAction) -> DialogState:
        """Closed as spam: no close text, no rating request."""
        async with self._lock:
            if not await self._finish("spam", None):
                raise Conflict(f"the client has just written to dialog {self._state.dialog_id}")
            return self._current()

    @spam.validator
    def _validate_spam(self, action: OperatorAction) -> None:
        self._require_owner_or_supervisor(action)

    @workflow.update
    async def pin(self, action: OperatorAction) -> DialogState:
        """Keep the dialog with its owner (no handover, no inactivity close)."""
        async with self._lock:
            self._state.pinned = True
            await self._project()
            return self._current()

    @pin.validator
    def _validate_pin(self, action: OperatorAction) -> None:
        self._require_owner(action)

    @workflow.update
    async def unpin(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            self._state.pinned = False
            await self._project()
            return self._current()

    @unpin.validator
    def _validate_unpin(self, action: OperatorAction) -> None:
        self._require_owner(action)

    @workflow.update
    async def close(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            if not await self._finish("closed", "operator"):
                raise Conflict(
                    f"the client has just written to dialog {self._state.dialog_id}; it stays open"
                )
            return self._current()

    @close.validator
    def _validate_close(self, action: OperatorAction) -> None:
        self._require_owner_or_supervisor(action)

    # ---- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, start: DialogStart) -> DialogState:
        while self._state.status not in FINAL_STATUSES:
            deadline = self._next_deadline()
            self._publish()
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            try:
                await workflow.wait_condition(self._has_work, timeout=timeout)
            except TimeoutError:
                pass
            async with self._lock:
                await self._step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._publish()
        if self._next_dialog:
            first = self._next_dialog[0]
            workflow.continue_as_new(
                DialogStart(
                    dialog_id=first.dialog_id,
                    chat_id=start.chat_id,
                    line_id=start.line_id,
                    channel_type=start.channel_type,
                    pending=self._next_dialog,
                )
            )
        return self._state

    def _has_work(self) -> bool:
        due = self._needs_queue or self._wake or self._check_owner or self._dirty
        due = due or self._line_deleted
        return due or self._state.status in FINAL_STATUSES

    async def _step(self) -> None:
        """Do what is due: deadlines first, then routing, then the projection."""
        state = self._state
        now = workflow.now()
        if state.status in FINAL_STATUSES:
            pass
        elif self._line_deleted:
            await self._finish("closed", "line_deleted")  # tried again until nothing is unseen
        elif (expiry := state.deadlines.get("expiry")) and now >= expiry:
            await self._finish("closed", "expired")
        elif (handover := state.deadlines.get("handover")) and now >= handover:
            assert self._routing is not None
            request = RoutingRequest(
                dialog_id=state.dialog_id, at=now, offered_at=self._routing.offered_at
            )
            self._apply(await self._run(DialogActivities.hand_over, request))
        if self._needs_queue and state.status not in FINAL_STATUSES:
            self._needs_queue = False
            state.status = "queued"
            request = RoutingRequest(dialog_id=state.dialog_id, at=now)
            self._apply(await self._run(DialogActivities.enter_queue, request))
        if self._wake and state.status not in FINAL_STATUSES:
            self._wake = False
            request = RoutingRequest(dialog_id=state.dialog_id, at=now)
            self._apply(await self._run(DialogActivities.current_routing, request))
        if self._check_owner and state.status not in FINAL_STATUSES:
            self._check_owner = False
            request = RoutingRequest(dialog_id=state.dialog_id, at=now)
            self._apply(await self._run(DialogActivities.check_owner, request))
        if self._dirty:
            await self._project()

    # ---- helpers ------------------------------------------------------------------------

    async def _accept(self, action: OperatorAction) -> None:
        outcome = await self._run(DialogActivities.accept, self._stamped(action))
        if not outcome.ok:
            if outcome.routing is not None:
                self._apply(outcome.routing)
            raise Conflict(outcome.reason)
        state = self._state
        state.operator_id = action.operator_id
        if state.status in ("new", "queued"):
            state.status = "accepted"
        assert outcome.routing is not None
        self._apply(outcome.routing)

    def _apply(self, routing: Routing) -> None:
        """Adopt the offer the database holds; an owner that was taken away means re-queue."""
        state = self._state
        self._routing = routing
        state.line_active = routing.line_active
        state.offered_to = [] if routing.operator_id else routing.offered_to
        if routing.operator_id is None and state.operator_id is not None:
            state.operator_id = None  # fired or removed from the queue
            state.status = "queued"
        self._dirty = True

    async def _finish(self, status: Status, reason: CloseReason | None) -> bool:
        """Close the dialog for good, unless the client has just written to it."""
        if not await self._project(status, reason):
            return False
        state = self._state
        state.status, state.close_reason, state.offered_to = status, reason, []
        return True

    async def _project(
        self, status: Status | None = None, close_reason: CloseReason | None = None
    ) -> bool:
        """Write the dialog row (a local activity: one marker in history, not three events).

        ``status`` and ``close_reason`` write a close that the state takes on only once the
        database has accepted it.
        """
        self._dirty = False
        state = self._state
        final = (status or state.status) in FINAL_STATUSES
        projection = Projection(
            dialog_id=state.dialog_id,
            line_id=state.line_id,
            status=status or state.status,
            close_reason=close_reason or state.close_reason,
            operator_id=state.operator_id,
            answered=state.answered,
            pinned=state.pinned,
            run_id=workflow.info().run_id,
            closed_at=workflow.now() if final else None,
            last_seen_message_id=max(state.seen_message_ids, default=None),
        )
        return await workflow.execute_local_activity_method(
            DialogActivities.project,
            projection,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=RETRY,
        )

    async def _run(
        self, method: Callable[[DialogActivities, Arg], Awaitable[Result]], argument: Arg
    ) -> Result:
        """Run one of the dialog's activities with the common timeout and retries."""
        return await workflow.execute_activity_method(
            method, argument, start_to_close_timeout=ACTIVITY_TIMEOUT, retry_policy=RETRY
        )

    def _stamped(self, action: ActionT) -> ActionT:
        """The action with the workflow's time, so the database records when it happened."""
        return action.model_copy(update={"at": workflow.now()})

    def _require_open(self) -> None:
        if self._state.status in FINAL_STATUSES:
            raise ValueError(f"dialog {self._state.dialog_id} is {self._state.status}")

    def _require_owner(self, action: OperatorAction) -> None:
        self._require_open()
        if action.operator_id != self._state.operator_id:
            raise ValueError(
                f"dialog {self._state.dialog_id} is not held by operator {action.operator_id}"
            )

    def _require_owner_or_supervisor(self, action: OperatorAction) -> None:
        if action.by_supervisor:
            self._require_open()
        else:
            self._require_owner(action)

    def _require_offered(self, action: OperatorAction) -> None:
        self._require_open()
        state = self._state
        if state.operator_id is not None:
            raise ValueError(
                f"dialog {state.dialog_id} is already accepted by operator {state.operator_id}"
            )
        if action.operator_id not in state.offered_to:
            raise ValueError(
                f"dialog {state.dialog_id} is not offered to operator {action.operator_id}"
            )

    def _deadlines(self) -> dict[str, datetime]:
        state = self._state
        deadlines: dict[str, datetime] = {}
        if state.unanswered_since is not None:
            deadlines["expiry"] = state.unanswered_since + EXPIRY
        routing = self._routing
        if state.offered_to and routing is not None and routing.offered_at is not None:
            deadlines["handover"] = routing.offered_at + timedelta(seconds=routing.handover_after)
        return deadlines

    def _next_deadline(self) -> datetime | None:
        return min(self._current().deadlines.values(), default=None)

    def _publish(self) -> None:
        """Keep the Temporal UI current: search attributes and a one-line summary."""
        state = self._state
        deadline = min(state.deadlines.values(), default=None)
        published = (state.status, state.operator_id, deadline, state.close_reason)
        if published == self._published:
            return  # each upsert is a history event: only write changes
        self._published = published
        workflow.upsert_search_attributes(
            [
                sa.LINE_ID.value_set(state.line_id),
                sa.CLIENT_ID.value_set(state.chat_id),
                sa.CHANNEL_TYPE.value_set(state.channel_type),
                sa.DIALOG_STATUS.value_set(state.status),
                sa.OPERATOR_ID.value_set(state.operator_id)
                if state.operator_id is not None
                else sa.OPERATOR_ID.value_unset(),
            ]
        )
        workflow.set_current_details(
            f"dialog {state.dialog_id}: {state.status}"
            + (f", operator {state.operator_id}" if state.operator_id else "")
            + (f", offered to {state.offered_to}" if state.offered_to else "")
            + (f", next deadline {deadline.isoformat()}" if deadline else "")
            + (f", closed: {state.close_reason}" if state.close_reason else "")
        )
