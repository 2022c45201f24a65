"""DialogWorkflow: one customer dialog, from the client's first message until it closes.

Every dialog of a chat runs under the chat's workflow id, so the Temporal UI lists a chat's
whole history in one place. Read top to bottom: the client's signals, the operators' actions
(updates: the API needs the answer), then the main loop that waits for the next event or the
nearest deadline (``workflows/timers.py``) and does what is due. Every status and every
transition between them is set in this file.

Who may accept the dialog is decided by the routing transaction in the database (it sees
every operator's load); the workflow asks for offers, keeps the timers and owns the status.
An action that waited for a database transaction takes the state as it is after it: a client
message may have arrived meanwhile. The words of every automatic text come from the line's
settings when it is sent.

Temporal wants every signal, update and validator to be a method of this class, which is
why it is long; what can stand alone lives beside it: ``timers`` (when each timer is due),
``alarm`` (the one timer that waits for them), ``checks`` (who may act), ``auto_replies``
(texts, closing, ratings) and ``visibility`` (the Temporal UI).
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.dialogs import DialogActivities
    from workflows import activity_calls, auto_replies, chat_tracker, checks, kpi, timers
    from workflows.alarm import Alarm
    from workflows.models import (
        FINAL_STATUSES,
        ActionOutcome,
        BotAction,
        BotReply,
        Carried,
        ClientMessage,
        ClientRating,
        CloseReason,
        DialogStart,
        DialogState,
        OperatorAction,
        Pending,
        Projection,
        RatingOutcome,
        Reply,
        Routing,
        RoutingRequest,
        Status,
        Transfer,
    )
    from workflows.visibility import Published, publish

ActionT = TypeVar("ActionT", bound=OperatorAction)
Action = OperatorAction | BotAction | ClientRating
Arg = TypeVar("Arg")
Result = TypeVar("Result")

# A history holds at most 2,000 updates; a run continues as new well before.
MAX_UPDATES_PER_RUN = 1000
SEEN_IDS_KEPT = 100
# An action sent without a deadline (tests, the CLI) gets this long for its database work.
ACTION_TIME = timedelta(seconds=30)
# A step whose database work failed is tried again after a pause that doubles up to the max.
RETRY_PAUSE = timedelta(seconds=15)
RETRY_PAUSE_MAX = timedelta(minutes=10)


def workflow_id(chat_id: int) -> str:
    """The id every dialog of a chat runs under."""
    return f"chat-{chat_id}"


class Conflict(ApplicationError):
    """The dialog's state does not allow the action (HTTP 409)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="Conflict", non_retryable=True)


class Unavailable(ApplicationError):
    """The dialog's database did not answer in time; nothing was applied (HTTP 503)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="Unavailable", non_retryable=True)


@workflow.defn
class DialogWorkflow:
    @workflow.init
    def __init__(self, start: DialogStart) -> None:
        carried = start.carried or Carried(
            state=DialogState(
                dialog_id=start.dialog_id,
                chat_id=start.chat_id,
                line_id=start.line_id,
                channel_type=start.channel_type,
                status="new",
            ),
            routing=None,
            pending=Pending(),
        )
        self._state = carried.state
        self._routing: Routing | None = carried.routing
        self._pending = carried.pending
        # A new dialog's row is current (the API wrote it; joining the queue writes the run).
        self._dirty = start.carried is not None
        self._joined = start.carried is not None
        self._updates = 0
        self._published: Published | None = None
        self._alarm = Alarm()  # the timer of the nearest deadline
        self._lock = asyncio.Lock()  # one activity-backed change at a time
        self._action_deadline: datetime | None = None  # of the action holding the lock
        self._retry_pause = RETRY_PAUSE
        # A close the database refused (a client message it has that this run has not seen
        # yet): the client message count then. The close waits for that message.
        self._close_refused_at: int | None = None
        for message in start.pending:
            self.client_message(message)

    # ---- reads --------------------------------------------------------------------------

    @workflow.query
    def state(self) -> DialogState:
        """The full state of the dialog, for ops and for the API."""
        return self._current()

    def _current(self) -> DialogState:
        """A copy of the state with its deadlines worked out afresh (what queries and actions
        return; a query must not change the state)."""
        return self._state.model_copy(update={"deadlines": self._deadlines()})

    def _deadlines(self) -> dict[str, datetime]:
        return timers.deadlines(self._state, self._routing)

    # ---- the client ---------------------------------------------------------------------

    @workflow.signal
    def client_message(self, message: ClientMessage) -> None:
        """A client message, committed to the database before it was signalled.

        The relay may deliver a message twice, and two workers may deliver a chat's messages
        out of order: an id seen before is ignored, whatever its place. A message filed under
        a later dialog of this chat (this one closed in between) starts that dialog as the
        next run. During closing a message reopens the dialog, unless it is the rating the
        dialog waits for.
        """
        state, pending = self._state, self._pending
        if message.dialog_id != state.dialog_id:
            if message.dialog_id > state.dialog_id and message not in pending.next_dialog:
                pending.next_dialog.append(message)
            return
        if self._seen(message.message_id) or state.status in FINAL_STATUSES:
            return
        state.seen_message_ids.append(message.message_id)
        if len(state.seen_message_ids) > SEEN_IDS_KEPT:
            state.seen_message_ids.sort()
            state.seen_up_to = max(state.seen_up_to, state.seen_message_ids.pop(0))
        state.client_messages += 1
        row_before = (state.status, state.close_reason)
        # Timers count from when the workflow got the message (milliseconds after it was
        # filed, unless Temporal was down), so workflow time alone decides every deadline.
        now = workflow.now()
        state.last_message_at = now
        if state.status == "closing" and message.rating and auto_replies.awaits_rating(state):
            pending.ratings.append(
                ClientRating(
                    dialog_id=state.dialog_id, value=message.rating, message_id=message.message_id
                )
            )
            return
        state.unanswered_since = now
        pending.greeting.append(message.message_id)
        kpi.client_wrote(state, now)
        chat_tracker.client_wrote(state, pending, message)
        if state.operator_id is not None and self._routing and self._routing.check_availability:
            pending.check_owner = True  # is the owner still there to answer?
        if state.status == "closing":
            self._reopen()
        elif state.status == "accepted":
            state.status = "client_waiting"
        elif state.status in ("operator_replied", "client_followup"):
            state.status = "client_followup"
        if (state.status, state.close_reason) != row_before:
            self._dirty = True

    def _reopen(self) -> None:
        """The client wrote while the dialog was closing: it is open again, with its owner
        (``client_waiting``), or back in the queue if nobody held it."""
        state = self._state
        state.close_reason, state.closing_since, state.rating_wait = None, None, None
        if state.operator_id is None:
            self._pending.queue = True
        else:
            state.status = "client_waiting"

    @workflow.signal
    def line_deleted(self, dialog_id: int) -> None:
        """The dialog's line was deleted with ``force``: close silently."""
        if dialog_id == self._state.dialog_id:
            self._pending.line_deleted = True

    @workflow.signal
    def wake(self) -> None:
        """The dialog's offer or its line's settings changed in the database."""
        self._pending.wake = True

    @workflow.update
    async def rate(self, rating: ClientRating) -> DialogState:
        """The client pressed like or dislike in the web chat while the dialog is closing."""
        async with self._acting(self._validate_rate, rating):
            outcome = await self._record_rating(rating)
            if not outcome.recorded:
                raise Conflict(outcome.reason)
        return self._current()

    @rate.validator
    def _validate_rate(self, rating: ClientRating) -> None:
        self._check(rating)
        if not auto_replies.awaits_rating(self._state) or self._state.status != "closing":
            raise ValueError(f"dialog {self._state.dialog_id} does not wait for a rating")

    # ---- operators ----------------------------------------------------------------------

    @workflow.update
    async def accept(self, action: OperatorAction) -> DialogState:
        """The operator takes the dialog. Whether it is on offer to them is decided by the
        accept transaction: this run's copy of the offer may lag the database's."""
        async with self._acting(self._validate_accept, action):
            await self._act(DialogActivities.accept, action)
        return self._current()

    @accept.validator
    def _validate_accept(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_open(self._state)

    @workflow.update
    async def skip(self, action: OperatorAction) -> DialogState:
        """The operator passes on an offer or a dialog they hold; routing offers it on."""
        async with self._acting(self._validate_skip, action):
            await self._act(DialogActivities.skip, action)
        return self._current()

    @skip.validator
    def _validate_skip(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_open(self._state)

    @workflow.update
    async def reply(self, reply: Reply) -> DialogState:
        """An operator's message (already stored by the API); accepts an unaccepted dialog."""
        async with self._acting(self._validate_reply, reply):
            state, now = self._state, workflow.now()
            numbers = kpi.after_reply(state, now)
            kpi_since = state.kpi_since  # a client message may start a new item meanwhile
            written = state.client_messages
            outcome = await self._act(
                DialogActivities.reply, reply.model_copy(update={"kpi": numbers})
            )
            if outcome.working_hours:
                state.off_hours_sent = False  # the next off-hours message is told again
            state.answered = True
            state.queued_since = None
            state.operator_replied_at = now
            kpi.replied(state, numbers, kpi_since)
            if state.client_messages == written:
                state.status = "operator_replied"  # as the reply's transaction wrote it
                state.unanswered_since = None
                state.last_message_at = now
            else:  # the client wrote while the reply was stored: that message waits
                state.status = "client_followup"
                self._dirty = True
        return self._current()

    @reply.validator
    def _validate_reply(self, reply: Reply) -> None:
        self._check(reply)
        state = self._state
        checks.require_open(state)
        if not state.line_active:
            raise ValueError(f"line {state.line_id} is inactive: replies are refused")

    @workflow.update
    async def transfer(self, transfer: Transfer) -> DialogState:
        """To an operator, who owns it at once, or to another line's queue."""
        async with self._acting(self._validate_transfer, transfer):
            bot_held = self._state.status == "bot"
            await self._act(DialogActivities.transfer, transfer)
            if bot_held:
                self._bot_left(workflow.now())  # a supervisor took it from the bot
            if transfer.to_line_id is not None:
                self._enter_queue_status()  # the other line's queue, under its settings
        return self._current()

    @transfer.validator
    def _validate_transfer(self, transfer: Transfer) -> None:
        self._check(transfer)
        state = self._state
        checks.require_owner_or_supervisor(state, transfer)
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
        async with self._acting(self._validate_spam, action):
            if not await self._finish("spam", None):
                raise Conflict(f"the client has just written to dialog {self._state.dialog_id}")
        return self._current()

    @spam.validator
    def _validate_spam(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_owner_or_supervisor(self._state, action, closing_too=True)

    @workflow.update
    async def pin(self, action: OperatorAction) -> DialogState:
        """Keep the dialog with its owner: no handover, no inactivity close (7 days instead)."""
        async with self._acting(self._validate_pin, action):
            await self._project(pinned=True)
            self._state.pinned = True
        return self._current()

    @pin.validator
    def _validate_pin(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_owner(self._state, action)

    @workflow.update
    async def unpin(self, action: OperatorAction) -> DialogState:
        async with self._acting(self._validate_unpin, action):
            await self._project(pinned=False)
            self._state.pinned = False
        return self._current()

    @unpin.validator
    def _validate_unpin(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_owner(self._state, action)

    @workflow.update
    async def close(self, action: OperatorAction) -> DialogState:
        """The close text and rating request go out; closed for good after ``rating_wait``."""
        async with self._acting(self._validate_close, action):
            if self._state.status == "bot":
                self._bot_left(workflow.now())  # a supervisor closes what the bot holds
            if not await self._start_closing("operator"):
                raise Conflict(
                    f"the client has just written to dialog {self._state.dialog_id}; it stays open"
                )
        return self._current()

    @close.validator
    def _validate_close(self, action: OperatorAction) -> None:
        self._check(action)
        checks.require_owner_or_supervisor(self._state, action)

    # ---- the chat-bot -------------------------------------------------------------------

    @workflow.update
    async def bot_reply(self, reply: BotReply) -> DialogState:
        """The bot's message (already stored by the API) while it holds or stays in the dialog."""
        async with self._acting(self._validate_bot_reply, reply):
            stamped = reply.model_copy(update={"at": workflow.now()})
            await self._database(DialogActivities.bot_replied, stamped)
            self._state.last_message_at = workflow.now()
        return self._current()

    @bot_reply.validator
    def _validate_bot_reply(self, reply: BotReply) -> None:
        self._check(reply)
        checks.require_bot(self._state, reply, holding=False)

    @workflow.update
    async def bot_handover(self, action: BotAction) -> DialogState:
        """The bot passes the dialog on to the line's queue."""
        async with self._acting(self._validate_bot_handover, action):
            await self._bot_hands_over(workflow.now())
        return self._current()

    @bot_handover.validator
    def _validate_bot_handover(self, action: BotAction) -> None:
        self._check(action)
        checks.require_bot(self._state, action, holding=True)

    @workflow.update
    async def bot_close(self, action: BotAction) -> DialogState:
        """The bot settled it: closed with reason ``bot``, without close text or rating."""
        async with self._acting(self._validate_bot_close, action):
            if not await self._finish("closed", "bot"):
                raise Conflict(
                    f"the client has just written to dialog {self._state.dialog_id}; it stays open"
                )
        return self._current()

    @bot_close.validator
    def _validate_bot_close(self, action: BotAction) -> None:
        self._check(action)
        checks.require_bot(self._state, action, holding=True)

    # ---- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, start: DialogStart) -> DialogState:
        if not self._joined:
            await self._until_done(self._join)
        while self._state.status not in FINAL_STATUSES:
            if self._close_refused_at is not None:
                await self._wait_for_unseen_message()
            if not self._has_work():
                self._publish()  # a step that is due at once publishes after it: one upsert
            self._alarm.set_for(self._deadlines())
            await workflow.wait_condition(
                lambda: (
                    self._has_work() or self._alarm_is_stale() or self._history_is_long(start)
                )  # updates alone also grow it
            )
            await self._until_done(self._step)
            if self._history_is_long(start):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(start.model_copy(update={"carried": self._carried()}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._publish()
        if self._pending.next_dialog:
            first = self._pending.next_dialog[0]
            workflow.continue_as_new(
                DialogStart(
                    dialog_id=first.dialog_id,
                    chat_id=start.chat_id,
                    line_id=self._state.line_id,
                    channel_type=start.channel_type,
                    pending=self._pending.next_dialog,
                    max_history_events=start.max_history_events,
                )
            )
        return self._current()

    async def _until_done(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run a step under the action lock. While its database is unreachable the dialog
        shows it (``stalled_since``, the ``DialogStalled`` search attribute) and tries again
        after a growing pause; actions are answered "unavailable" meanwhile, not held."""
        while True:
            try:
                async with self._lock:
                    await step()
            except activity_calls.Failed as error:
                state = self._state
                if state.stalled_since is None:
                    state.stalled_since = workflow.now()
                workflow.logger.warning(
                    "dialog %s: database work failed: %s", state.dialog_id, error
                )
                self._publish()
                await workflow.sleep(self._retry_pause, summary="retry after a database error")
                self._retry_pause = min(self._retry_pause * 2, RETRY_PAUSE_MAX)
                continue
            if self._state.stalled_since is not None:
                self._state.stalled_since = None
                self._retry_pause = RETRY_PAUSE
                self._publish()
            return

    async def _join(self) -> None:
        """A new run's first step: the client is recognised, and the dialog joins its line's
        queue (or its chat-bot).

        A run started for a dialog that has already ended (the relay delivered a message
        again after the dialog's run completed) changes nothing: it ends as the row says.
        """
        state = self._state
        # First: a known client's dialog goes to their responsible operator.
        await chat_tracker.track(state, self._pending)
        request = RoutingRequest(
            dialog_id=state.dialog_id,
            at=workflow.now(),
            run_id=workflow.info().run_id,
            bot_may_take=state.status == "new",
        )
        routing = await self._database(DialogActivities.enter_queue, request)
        self._joined = True
        if routing.final_status is not None:
            state.status, state.close_reason = routing.final_status, routing.final_reason
            self._pending = Pending(next_dialog=self._pending.next_dialog)
            self._dirty = False
            return
        self._enter_queue_status()
        self._apply(routing)

    async def _wait_for_unseen_message(self) -> None:
        """The database refused a close for a client message this run has not seen yet: wait
        for it (the relay delivers it; it reopens the dialog) instead of trying again."""
        refused_at = self._close_refused_at
        await workflow.wait_condition(
            lambda: self._state.client_messages != refused_at or self._pending.line_deleted
        )
        self._close_refused_at = None

    def _alarm_is_stale(self) -> bool:
        return self._alarm.is_stale(self._deadlines())

    def _has_work(self) -> bool:
        pending = self._pending
        due = pending.queue or pending.wake or pending.check_owner or pending.line_deleted
        due = due or pending.off_hours or bool(pending.greeting or pending.ratings or pending.track)
        return due or self._dirty or self._state.status in FINAL_STATUSES

    async def _step(self) -> None:
        """Do what is due: deadlines first, then routing, automatic texts, the projection.

        Owed work is cleared only once done, so a step that fails is done again in full.
        """
        state, pending = self._state, self._pending
        now = workflow.now()
        due = {name for name, at in self._deadlines().items() if now >= at}
        if state.status in FINAL_STATUSES:
            return
        while pending.ratings and state.status not in FINAL_STATUSES:  # before rating_wait
            await self._record_rating(pending.ratings[0])
            pending.ratings.pop(0)
        if pending.line_deleted:
            await self._close_for_good("line_deleted")
        elif "rating_wait" in due:
            await self._close_for_good(state.close_reason or "operator")
        elif "expiry" in due:
            await self._close_for_good("expired")
        elif "pinned" in due or "inactivity" in due:
            await self._start_closing("inactivity")
        elif "handover" in due:
            await self._hand_over(now)
        elif "bot_handover" in due:
            await self._bot_hands_over(now)
        elif "no_answer" in due:
            await auto_replies.send(state, "no_answer")
            state.no_answer_sent = True
        if state.status in FINAL_STATUSES:
            return
        if self._routing and (item := timers.kpi_item(state, self._routing)):
            if f"kpi_{item[0]}" in due:
                await kpi.overdue(state, item[0])
        # Before routing: a known client's dialog goes to their responsible operator.
        await chat_tracker.track(state, pending)
        await self._route_pending(now)
        if pending.greeting:
            message_ids = list(pending.greeting)
            await auto_replies.greet(state, self._routing, message_ids)
            del pending.greeting[: len(message_ids)]
        if pending.off_hours:
            if not state.off_hours_sent:
                await auto_replies.send(state, "off_hours")
                state.off_hours_sent = True
            pending.off_hours = False
        if self._dirty:
            await self._project()

    async def _hand_over(self, now: datetime) -> None:
        """Nobody accepted the offer in time: it moves on by the line's distribution mode."""
        assert self._routing is not None
        request = RoutingRequest(
            dialog_id=self._state.dialog_id, at=now, offered_at=self._routing.offered_at
        )
        self._apply(await self._database(DialogActivities.hand_over, request))

    async def _route_pending(self, now: datetime) -> None:
        """The routing the dialog owes itself: join the queue again (reopened while nobody
        held it), re-read its offer (a wake-up), check its owner is still there (a client
        message)."""
        state, pending = self._state, self._pending
        for flag, method in (
            ("queue", DialogActivities.enter_queue),
            ("wake", DialogActivities.current_routing),
            ("check_owner", DialogActivities.check_owner),
        ):
            if getattr(pending, flag) and state.status not in FINAL_STATUSES:
                request = RoutingRequest(dialog_id=state.dialog_id, at=now)
                routing = await self._database(method, request)
                setattr(pending, flag, False)
                if flag == "queue":
                    self._enter_queue_status()
                self._apply(routing)

    async def _bot_hands_over(self, now: datetime) -> None:
        """The bot is done (it asked, or ``bot.handover_after`` ran out): to the queue."""
        request = RoutingRequest(dialog_id=self._state.dialog_id, at=now)
        routing = await self._database(DialogActivities.enter_queue, request)
        self._bot_left(now)
        self._enter_queue_status()
        self._apply(routing)

    def _bot_left(self, now: datetime) -> None:
        """Operators take over from the bot: their KPI clock starts now, not at the client
        messages the bot had."""
        state = self._state
        state.bot_since = None
        if state.kpi_since is not None:
            state.kpi_since = now

    async def _close_for_good(self, reason: CloseReason) -> None:
        """A timer or a deleted line closes the dialog; if the client has just written, the
        main loop waits for that message (it reopens the dialog)."""
        if not await self._finish("closed", reason):
            self._close_refused_at = self._state.client_messages

    async def _start_closing(self, reason: CloseReason) -> bool:
        """Send the close text and rating request; the dialog is ``closing`` until
        ``rating_wait`` is over (at once when it is 0). False if the client wrote meanwhile:
        the dialog is open again for that message."""
        state = self._state
        written = state.client_messages
        closing = await auto_replies.start_closing(state, reason, self._time_left())
        if state.client_messages != written:
            # Its transaction wrote the row as closing: the message reopens it, as it would
            # a moment later (back to its owner, or to the queue).
            self._reopen()
            self._dirty = True
            return False
        state.status, state.close_reason, state.offered_to = "closing", reason, []
        state.closing_since = workflow.now()
        state.rating_wait = closing.rating_wait
        state.rating_requested = state.rating_requested or closing.rating_requested
        state.close_on_rating = closing.close_on_rating
        self._dirty = True
        if closing.rating_wait == 0 and not await self._finish("closed", reason):
            self._close_refused_at = state.client_messages
        return True

    async def _record_rating(self, rating: ClientRating) -> RatingOutcome:
        outcome = await auto_replies.record_rating(self._state, rating, self._time_left())
        self._dirty = True
        if outcome.recorded and outcome.close_on_rating:
            await self._finish("closed", "rating")
        return outcome

    # ---- helpers ------------------------------------------------------------------------

    @asynccontextmanager
    async def _acting(self, validator: Callable[[Arg], None], action: Arg) -> AsyncIterator[None]:
        """Hold the action lock while an update changes the dialog.

        The validator runs again under the lock: an update that waited for it may find the
        dialog changed by the one before (a close before a reply), or its deadline passed.
        The action's database work must finish before its deadline; if the database does not
        answer by then, the update fails as unavailable.
        """
        async with self._lock:
            self._updates += 1
            try:
                validator(action)
            except ValueError as error:
                raise Conflict(str(error)) from None
            self._action_deadline = getattr(action, "expires_at", None)
            try:
                yield
            except activity_calls.Failed as error:
                raise Unavailable(
                    f"dialog {self._state.dialog_id}: the database did not answer in time; "
                    "nothing was changed"
                ) from error
            finally:
                self._action_deadline = None

    def _check(self, action: Action) -> None:
        """What every validator checks first: the action is for this run's dialog, in time."""
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_in_time(action.expires_at, workflow.now())

    def _time_left(self) -> timedelta:
        """How long database work may take: the acting update's time, or a main-loop step's."""
        if self._action_deadline is None:
            return ACTION_TIME if self._lock.locked() else activity_calls.STEP
        return max(self._action_deadline - workflow.now(), timedelta(seconds=1))

    async def _act(
        self, method: Callable[[Any, ActionT], Awaitable[ActionOutcome]], action: ActionT
    ) -> ActionOutcome:
        """An operator action's transaction: the database decides, the run adopts the offer
        and owner it leaves, and a refusal is a conflict."""
        outcome = await self._database(method, action.model_copy(update={"at": workflow.now()}))
        if outcome.routing is not None:
            self._apply(outcome.routing)
        if not outcome.ok or outcome.routing is None:
            raise Conflict(outcome.reason)
        return outcome

    def _enter_queue_status(self) -> None:
        """The dialog waits in the queue; the no-answer timer starts."""
        self._state.status = "queued"
        self._state.queued_since = workflow.now()

    def _apply(self, routing: Routing) -> None:
        """Adopt what the database holds: the dialog's line and its rules, its offer, and its
        owner (a new one has accepted; one taken away means back to the queue)."""
        state = self._state
        status = state.status
        if routing.offered_at is None:
            state.handover_at = None
        elif self._routing is None or self._routing.offered_at != routing.offered_at:
            # A new offer: it waits for the handover_after the line has now; a settings
            # change later applies to the next offer.
            state.handover_at = routing.offered_at + timedelta(seconds=routing.handover_after)
        self._routing = routing
        state.line_id = routing.line_id
        state.line_active = routing.line_active
        state.offered_to = [] if routing.operator_id else routing.offered_to
        if routing.operator_id != state.operator_id:
            if routing.operator_id is None:  # fired, removed from the queue, skipped
                state.operator_id = None
                self._enter_queue_status()
            else:  # accepted, transferred or intercepted: the new owner has not written yet
                state.operator_id, state.queued_since = routing.operator_id, None
                if state.status != "closing":
                    state.status = "accepted"
        state.bot_id = routing.bot_id
        if routing.bot_took:  # the line's chat-bot holds it, not the queue
            state.status, state.queued_since, state.bot_since = "bot", None, workflow.now()
        # The routing transaction wrote the offer and the status it set; only a status the
        # workflow changed here still has to reach the row.
        if state.status != status:
            self._dirty = True
        if routing.nobody_available and not state.off_hours_sent:
            self._pending.off_hours = True
        # Ops see a new offer at once, not after the rest of this step's activities.
        self._publish()

    def _publish(self) -> None:
        self._published = publish(self._current(), self._published)

    async def _finish(self, status: Status, reason: CloseReason | None) -> bool:
        """Close the dialog for good, unless the client has just written to it."""
        if not await self._project(status, reason):
            return False
        state = self._state
        state.status, state.close_reason, state.offered_to = status, reason, []
        state.closed_at = workflow.now()
        return True

    async def _project(
        self,
        status: Status | None = None,
        close_reason: CloseReason | None = None,
        pinned: bool | None = None,
    ) -> bool:
        """Write the dialog row (a local activity: one marker in history, not three events).

        ``status`` and ``close_reason`` write a close, and ``pinned`` a pin, that the state
        takes on only once the database has accepted it.
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
            pinned=state.pinned if pinned is None else pinned,
            run_id=workflow.info().run_id,
            closed_at=workflow.now() if final else None,
            seen_up_to=state.seen_up_to,
            seen_message_ids=state.seen_message_ids,
        )
        try:
            return await self._database(DialogActivities.project, projection)
        except activity_calls.Failed:
            self._dirty = True
            raise

    async def _database(
        self, method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg
    ) -> Result:
        """A routing or action transaction: a local activity (one marker in history, no
        round trip through the server), bounded by the time the caller has."""
        return await activity_calls.run_local(method, argument, self._time_left())

    def _seen(self, message_id: int) -> bool:
        state = self._state
        return message_id <= state.seen_up_to or message_id in state.seen_message_ids

    def _history_is_long(self, start: DialogStart) -> bool:
        """Time to continue as new: Temporal suggests it, or the run's history or update
        count reached its limit."""
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= start.max_history_events
            or self._updates >= MAX_UPDATES_PER_RUN
        )

    def _carried(self) -> Carried:
        return Carried(state=self._state, routing=self._routing, pending=self._pending)
