"""DialogWorkflow: one customer dialog, from the client's first message until it closes.

Every dialog of a chat runs under the chat's workflow id, so the Temporal UI lists a chat's
whole history in one place. Read top to bottom: the client's signals, the operators' actions
(updates: the API needs the answer), then the main loop that waits for the next event or the
nearest deadline (``workflows/timers.py``) and does what is due.

Who may accept the dialog is decided by the routing transaction in the database (it sees
every operator's load); the workflow asks for offers, keeps the timers and owns the status.
The words of every automatic text come from the line's settings when it is sent.

Temporal wants every signal, update and validator to be a method of this class, which is
why it is long; what can stand alone lives beside it: ``timers`` (when each timer is due),
``alarm`` (the one timer that waits for them), ``checks`` (who may act), ``auto_replies``
(texts, closing, ratings) and ``visibility`` (the Temporal UI).
"""

import asyncio
from collections.abc import Awaitable, Callable
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
Arg = TypeVar("Arg")
Result = TypeVar("Result")

# Dialogs started before automatic actions existed replay without them (see README).
AUTOMATIC_ACTIONS = "automatic-actions"
# ... and without the chat tracker and KPI timers.
CRM_AND_KPI = "crm-and-kpi"
# ... and upserting search attributes when only a deadline changed.
SEARCH_ATTRIBUTES_ON_CHANGE = "search-attributes-on-change"
# ... and without chat-bots.
BOTS = "bots"
# A history holds at most 2,000 updates; a run continues as new well before.
MAX_UPDATES_PER_RUN = 1000
SEEN_IDS_KEPT = 100


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
        self._v2 = workflow.patched(AUTOMATIC_ACTIONS)
        self._v3 = workflow.patched(CRM_AND_KPI)
        self._v4 = workflow.patched(SEARCH_ATTRIBUTES_ON_CHANGE)
        self._v5 = workflow.patched(BOTS)
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
        # The projection in the database is behind. Since version 4 a new dialog's row is
        # current: the API wrote it and joining the queue writes the run id.
        self._dirty = not self._v4 or start.carried is not None
        self._updates = 0
        self._published: Published | None = None
        self._alarm = Alarm()  # the timer of the nearest deadline (version 2)
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
        self._state.deadlines = timers.deadlines(self._state, self._routing, self._v2)
        return self._state

    # ---- the client ---------------------------------------------------------------------

    @workflow.signal
    def client_message(self, message: ClientMessage) -> None:
        """A client message, committed to the database before it was signalled.

        The relay may deliver a message twice; an id seen before is ignored. A message filed
        under a later dialog of this chat (this one closed in between) starts that dialog as
        the next run. During closing a message reopens the dialog, unless it is the rating
        the dialog waits for.
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
            state.seen_up_to = max(state.seen_up_to, state.seen_message_ids.pop(0))
        state.client_messages += 1
        # Since version 4 the row is written only if this changes what it holds.
        row_before = (state.status, state.close_reason)
        self._dirty = self._dirty or not self._v4
        # Timers count from when the workflow got the message (milliseconds after it was
        # filed, unless Temporal was down), so workflow time alone decides every deadline.
        now = workflow.now()
        state.last_message_at = now
        if state.status == "closing" and message.rating and auto_replies.awaits_rating(self._state):
            pending.ratings.append(
                ClientRating(
                    dialog_id=state.dialog_id, value=message.rating, message_id=message.message_id
                )
            )
            return
        state.unanswered_since = now
        if self._v2:
            pending.greeting.append(message.message_id)
        if self._v3:
            kpi.client_wrote(state, now)
            chat_tracker.client_wrote(state, pending, message)
        if state.operator_id is not None and self._routing and self._routing.check_availability:
            pending.check_owner = True  # is the owner still there to answer?
        if state.status == "closing" and state.operator_id is None:
            state.close_reason, state.closing_since, state.rating_wait = None, None, None
            pending.queue = True  # closed while nobody had it: back to the queue
        elif state.status in ("accepted", "client_waiting", "closing"):
            state.status = "client_waiting"
            state.close_reason, state.closing_since, state.rating_wait = None, None, None
        elif state.status in ("operator_replied", "client_followup"):
            state.status = "client_followup"
        if (state.status, state.close_reason) != row_before:
            self._dirty = True

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
        async with self._lock:
            self._recheck(self._validate_rate, rating)
            outcome = await self._record_rating(rating)
            if not outcome.recorded:
                raise Conflict(outcome.reason)
            return self._current()

    @rate.validator
    def _validate_rate(self, rating: ClientRating) -> None:
        checks.require_dialog(self._state, rating.dialog_id)
        if not auto_replies.awaits_rating(self._state) or self._state.status != "closing":
            raise ValueError(f"dialog {self._state.dialog_id} does not wait for a rating")

    # ---- operators ----------------------------------------------------------------------

    @workflow.update
    async def accept(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            self._recheck(self._validate_accept, action)
            await self._accept(action)
            return self._current()

    @accept.validator
    def _validate_accept(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_offered(self._state, action)

    @workflow.update
    async def skip(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            self._recheck(self._validate_skip, action)
            held = self._state.operator_id == action.operator_id
            routing = await self._database(DialogActivities.skip, self._stamped(action))
            self._state.operator_id = None
            if held:
                self._enter_queue_status()  # back in the queue: the no-answer timer restarts
            else:
                self._state.status = "queued"  # a skipped offer keeps the queue's timers
            self._apply(routing)
            return self._current()

    @skip.validator
    def _validate_skip(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_holder_or_offered(self._state, action)

    @workflow.update
    async def reply(self, reply: Reply) -> DialogState:
        """An operator's message (already stored by the API); accepts an unaccepted dialog."""
        async with self._lock:
            self._recheck(self._validate_reply, reply)
            numbers = kpi.after_reply(self._state, workflow.now()) if self._v3 else None
            kpi_since = self._state.kpi_since  # a client message may start a new item meanwhile
            reply = reply.model_copy(update={"kpi": numbers})
            outcome = await self._database(DialogActivities.reply, self._stamped(reply))
            if outcome.routing is not None:
                self._apply(outcome.routing)  # the line's state, and the owner if it accepted
            if not outcome.ok:
                raise Conflict(outcome.reason)
            state = self._state
            state.operator_id = reply.operator_id
            state.status = "operator_replied"
            state.answered = True
            state.unanswered_since = None
            state.queued_since = None
            state.operator_replied_at = state.last_message_at = workflow.now()
            if self._v3:
                kpi.replied(state, numbers, kpi_since)
            if outcome.working_hours:
                state.off_hours_sent = False  # the next off-hours message is told again
            if not self._v2:
                self._dirty = True  # since version 2 the reply's transaction writes the row
            return self._current()

    @reply.validator
    def _validate_reply(self, reply: Reply) -> None:
        checks.require_dialog(self._state, reply.dialog_id)
        state = self._state
        checks.require_open(state)
        if not state.line_active:
            raise ValueError(f"line {state.line_id} is inactive: replies are refused")
        if state.operator_id != reply.operator_id:
            checks.require_offered(state, reply)

    @workflow.update
    async def transfer(self, transfer: Transfer) -> DialogState:
        """To an operator, who owns it at once, or to another line's queue."""
        async with self._lock:
            self._recheck(self._validate_transfer, transfer)
            outcome = await self._database(DialogActivities.transfer, self._stamped(transfer))
            if not outcome.ok or outcome.routing is None:
                raise Conflict(outcome.reason)
            state = self._state
            self._bot_left(workflow.now())  # a supervisor took it from the bot
            state.operator_id = outcome.routing.operator_id
            state.line_id = outcome.routing.line_id
            if state.operator_id:
                state.status = "accepted"
            else:
                self._enter_queue_status()
            self._apply(outcome.routing)
            return self._current()

    @transfer.validator
    def _validate_transfer(self, transfer: Transfer) -> None:
        checks.require_dialog(self._state, transfer.dialog_id)
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
        async with self._lock:
            self._recheck(self._validate_spam, action)
            if not await self._finish("spam", None):
                raise Conflict(f"the client has just written to dialog {self._state.dialog_id}")
            return self._current()

    @spam.validator
    def _validate_spam(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_owner_or_supervisor(self._state, action, closing_too=True)

    @workflow.update
    async def pin(self, action: OperatorAction) -> DialogState:
        """Keep the dialog with its owner: no handover, no inactivity close (7 days instead)."""
        async with self._lock:
            self._recheck(self._validate_pin, action)
            self._state.pinned = True
            await self._project()
            return self._current()

    @pin.validator
    def _validate_pin(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_owner(self._state, action)

    @workflow.update
    async def unpin(self, action: OperatorAction) -> DialogState:
        async with self._lock:
            self._recheck(self._validate_unpin, action)
            self._state.pinned = False
            await self._project()
            return self._current()

    @unpin.validator
    def _validate_unpin(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_owner(self._state, action)

    @workflow.update
    async def close(self, action: OperatorAction) -> DialogState:
        """The close text and rating request go out; closed for good after ``rating_wait``."""
        async with self._lock:
            self._recheck(self._validate_close, action)
            self._bot_left(workflow.now())  # a supervisor closes what the bot holds
            if self._v2:
                await self._start_closing("operator")
            elif not await self._finish("closed", "operator"):
                raise Conflict(
                    f"the client has just written to dialog {self._state.dialog_id}; it stays open"
                )
            return self._current()

    @close.validator
    def _validate_close(self, action: OperatorAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_owner_or_supervisor(self._state, action)

    # ---- the chat-bot -------------------------------------------------------------------

    @workflow.update
    async def bot_reply(self, reply: BotReply) -> DialogState:
        """The bot's message (already stored by the API) while it holds or stays in the dialog."""
        async with self._lock:
            self._recheck(self._validate_bot_reply, reply)
            stamped = reply.model_copy(update={"at": workflow.now()})
            await self._database(DialogActivities.bot_replied, stamped)
            self._state.last_message_at = workflow.now()
            return self._current()

    @bot_reply.validator
    def _validate_bot_reply(self, reply: BotReply) -> None:
        checks.require_dialog(self._state, reply.dialog_id)
        checks.require_bot(self._state, reply, holding=False)

    @workflow.update
    async def bot_handover(self, action: BotAction) -> DialogState:
        """The bot passes the dialog on to the line's queue."""
        async with self._lock:
            self._recheck(self._validate_bot_handover, action)
            await self._bot_hands_over(workflow.now())
            return self._current()

    @bot_handover.validator
    def _validate_bot_handover(self, action: BotAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_bot(self._state, action, holding=True)

    @workflow.update
    async def bot_close(self, action: BotAction) -> DialogState:
        """The bot settled it: closed with reason ``bot``, without close text or rating."""
        async with self._lock:
            self._recheck(self._validate_bot_close, action)
            if not await self._finish("closed", "bot"):
                raise Conflict(
                    f"the client has just written to dialog {self._state.dialog_id}; it stays open"
                )
            return self._current()

    @bot_close.validator
    def _validate_bot_close(self, action: BotAction) -> None:
        checks.require_dialog(self._state, action.dialog_id)
        checks.require_bot(self._state, action, holding=True)

    # ---- the main loop ------------------------------------------------------------------

    @workflow.run
    async def run(self, start: DialogStart) -> DialogState:
        while self._state.status not in FINAL_STATUSES:
            deadline = min(self._current().deadlines.values(), default=None)
            if not self._v4 or not self._has_work():
                # Since version 4 a step that is due at once publishes after it: one upsert.
                self._published = publish(self._state, self._published, self._v4)
            if self._v2:
                self._alarm.set_for(deadline)
                await workflow.wait_condition(
                    lambda: (
                        self._has_work() or self._alarm_is_stale() or self._history_is_long(start)
                    )  # updates alone also grow it
                )
            else:
                timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
                try:
                    await workflow.wait_condition(self._has_work, timeout=timeout)
                except TimeoutError:
                    pass
            async with self._lock:
                await self._step()
            if self._v2 and self._history_is_long(start):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(start.model_copy(update={"carried": self._carried()}))
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._published = publish(self._current(), self._published, self._v4)
        if self._pending.next_dialog:
            first = self._pending.next_dialog[0]
            workflow.continue_as_new(
                DialogStart(
                    dialog_id=first.dialog_id,
                    chat_id=start.chat_id,
                    line_id=start.line_id,
                    channel_type=start.channel_type,
                    pending=self._pending.next_dialog,
                    max_history_events=start.max_history_events,
                )
            )
        return self._state

    def _alarm_is_stale(self) -> bool:
        due = timers.deadlines(self._state, self._routing, self._v2).values()
        return self._alarm.is_stale(min(due, default=None))

    def _has_work(self) -> bool:
        pending = self._pending
        due = pending.queue or pending.wake or pending.check_owner or pending.line_deleted
        due = due or pending.off_hours or bool(pending.greeting or pending.ratings or pending.track)
        return due or self._dirty or self._state.status in FINAL_STATUSES

    async def _step(self) -> None:
        """Do what is due: deadlines first, then routing, automatic texts, the projection."""
        state, pending = self._state, self._pending
        now = workflow.now()
        if not self._v2:  # version 1 went by the deadlines worked out before it slept
            return await self._step_v1(now)
        due = {name for name, at in self._current().deadlines.items() if now >= at}
        if state.status in FINAL_STATUSES:
            return
        while pending.ratings and state.status not in FINAL_STATUSES:  # before rating_wait
            await self._record_rating(pending.ratings.pop(0))
        if pending.line_deleted:
            await self._close_for_good("line_deleted")  # tried again until nothing is unseen
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
            state.no_answer_sent = True
            await auto_replies.send(state, "no_answer")
        if state.status in FINAL_STATUSES:
            return
        if self._v3:
            if self._routing and (item := timers.kpi_item(state, self._routing)):
                if f"kpi_{item[0]}" in due:
                    await kpi.overdue(state, item[0])
            # Before routing: a known client's dialog goes to their responsible operator.
            await chat_tracker.track(state, pending)
        await self._route_pending(now)
        if pending.greeting:
            message_ids, pending.greeting = pending.greeting, []
            await auto_replies.greet(state, self._routing, message_ids)
        if pending.off_hours:
            pending.off_hours = False
            if not state.off_hours_sent:
                state.off_hours_sent = True
                await auto_replies.send(state, "off_hours")
        if self._dirty:
            await self._project()

    async def _step_v1(self, now: datetime) -> None:
        """The step of version 1, kept as it was so its histories replay."""
        state, pending = self._state, self._pending
        if state.status in FINAL_STATUSES:
            pass
        elif pending.line_deleted:
            await self._finish("closed", "line_deleted")
        elif (expiry := state.deadlines.get("expiry")) and now >= expiry:
            await self._finish("closed", "expired")
        elif (handover := state.deadlines.get("handover")) and now >= handover:
            await self._hand_over(now)
        await self._route_pending(now)
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
        """The routing the dialog owes itself: join the queue (a new or reopened dialog),
        re-read its offer (a wake-up), check its owner is still there (a client message)."""
        state, pending = self._state, self._pending
        for flag, method in (
            ("queue", DialogActivities.enter_queue),
            ("wake", DialogActivities.current_routing),
            ("check_owner", DialogActivities.check_owner),
        ):
            if getattr(pending, flag) and state.status not in FINAL_STATUSES:
                setattr(pending, flag, False)
                run_id, bot_may_take = None, False
                if flag == "queue":
                    bot_may_take = self._v5 and state.status == "new"  # a bot takes it first
                    self._enter_queue_status()
                    run_id = workflow.info().run_id
                request = RoutingRequest(
                    dialog_id=state.dialog_id, at=now, run_id=run_id, bot_may_take=bot_may_take
                )
                self._apply(await self._database(method, request))

    async def _bot_hands_over(self, now: datetime) -> None:
        """The bot is done (it asked, or ``bot.handover_after`` ran out): to the queue."""
        self._bot_left(now)
        self._enter_queue_status()
        request = RoutingRequest(dialog_id=self._state.dialog_id, at=now)
        self._apply(await self._database(DialogActivities.enter_queue, request))

    def _bot_left(self, now: datetime) -> None:
        """Operators take over from the bot: their KPI clock starts now, not at the client
        messages the bot had."""
        state = self._state
        if state.status == "bot":
            state.bot_since = None
            if state.kpi_since is not None:
                state.kpi_since = now

    def _recheck(self, validator: Callable[[Arg], None], argument: Arg) -> None:
        """Check again under the lock: an update that waited for it may find the dialog
        changed by the one before (a close before a reply). Counts the run's updates."""
        self._updates += 1
        if self._v2:
            try:
                validator(argument)
            except ValueError as error:
                raise Conflict(str(error)) from None

    async def _close_for_good(self, reason: CloseReason) -> None:
        """A timer or a deleted line closes the dialog; if the client has just written, wait
        for that message (it reopens the dialog) rather than retrying at once."""
        seen = self._state.client_messages
        if not await self._finish("closed", reason):
            await workflow.wait_condition(
                lambda: self._state.client_messages != seen, timeout=timedelta(seconds=5)
            )

    async def _start_closing(self, reason: CloseReason) -> None:
        await auto_replies.start_closing(self._state, reason)
        self._dirty = True
        if self._state.rating_wait == 0:
            await self._finish("closed", reason)  # refused if the client has just written

    async def _record_rating(self, rating: ClientRating) -> RatingOutcome:
        outcome = await auto_replies.record_rating(self._state, rating)
        self._dirty = True
        if outcome.recorded and outcome.close_on_rating:
            await self._finish("closed", "rating")
        return outcome

    # ---- helpers ------------------------------------------------------------------------

    async def _accept(self, action: OperatorAction) -> None:
        outcome = await self._database(DialogActivities.accept, self._stamped(action))
        if not outcome.ok:
            if outcome.routing is not None:
                self._apply(outcome.routing)
            raise Conflict(outcome.reason)
        state = self._state
        state.operator_id = action.operator_id
        state.queued_since = None
        if state.status in ("new", "queued"):
            state.status = "accepted"
        assert outcome.routing is not None
        self._apply(outcome.routing)

    def _enter_queue_status(self) -> None:
        """The dialog waits in the queue; the no-answer timer starts."""
        self._state.status = "queued"
        self._state.queued_since = workflow.now()

    def _apply(self, routing: Routing) -> None:
        """Adopt the offer the database holds; an owner that was taken away means re-queue."""
        state = self._state
        status = state.status
        if routing.offered_at is None:
            state.handover_at = None
        elif self._routing is None or self._routing.offered_at != routing.offered_at:
            # A new offer: it waits for the handover_after the line has now; a settings
            # change later applies to the next offer.
            state.handover_at = routing.offered_at + timedelta(seconds=routing.handover_after)
        self._routing = routing
        state.line_active = routing.line_active
        state.offered_to = [] if routing.operator_id else routing.offered_to
        if routing.operator_id is None and state.operator_id is not None:
            state.operator_id = None  # fired or removed from the queue
            self._enter_queue_status()
        if self._v5:
            state.bot_id = routing.bot_id
            if routing.bot_took:  # the line's chat-bot holds it, not the queue
                state.status, state.queued_since, state.bot_since = "bot", None, workflow.now()
        # The routing transaction wrote the offer and the status it set; only a status the
        # workflow changed here still has to reach the row.
        if not self._v2 or state.status != status:
            self._dirty = True
        if self._v2:
            if routing.nobody_available and not state.off_hours_sent:
                self._pending.off_hours = True
            # Ops see a new offer at once, not after the rest of this step's activities.
            self._published = publish(self._current(), self._published, self._v4)

    async def _finish(self, status: Status, reason: CloseReason | None) -> bool:
        """Close the dialog for good, unless the client has just written to it."""
        if not await self._project(status, reason):
            return False
        state = self._state
        state.status, state.close_reason, state.offered_to = status, reason, []
        state.closed_at = workflow.now()
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
        return await activity_calls.run_local(DialogActivities.project, projection)

    async def _database(
        self, method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg
    ) -> Result:
        """A routing or action transaction: a local activity (one marker in history, no
        round trip through the server); dialogs started before version 2 ran them as
        regular activities."""
        if self._v2:
            return await activity_calls.run_local(method, argument)
        return await activity_calls.run(method, argument)

    def _stamped(self, action: ActionT) -> ActionT:
        """The action with the workflow's time, so the database records when it happened."""
        return action.model_copy(update={"at": workflow.now()})

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
