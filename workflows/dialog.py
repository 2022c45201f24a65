"""DialogWorkflow: one customer dialog, from the client's first message until it closes.

Every dialog of a chat runs under the chat's workflow id, so the Temporal UI lists a chat's
whole history in one place. Read top to bottom: the state, the events that change it, then
the main loop that waits for the next event or the nearest deadline.
"""

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes as sa
    from workflows.models import ClientMessage, DialogStart, DialogState

# A dialog nobody answers is closed this long after the client's last unanswered message.
EXPIRY = timedelta(days=30)


def workflow_id(chat_id: int) -> str:
    """The id every dialog of a chat runs under."""
    return f"chat-{chat_id}"


@workflow.defn
class DialogWorkflow:
    @workflow.init
    def __init__(self, start: DialogStart) -> None:
        self._state = DialogState(
            dialog_id=start.dialog_id,
            chat_id=start.chat_id,
            line_id=start.line_id,
            channel_type=start.channel_type,
            status="queued",
        )
        self._published: tuple[object, ...] | None = None
        self._planned_for: tuple[int, str] | None = None

    @workflow.query
    def state(self) -> DialogState:
        """The full state of the dialog, for ops and for the API."""
        return self._state

    @workflow.signal
    def client_message(self, message: ClientMessage) -> None:
        """A client message, committed to the database before it was signalled.

        The relay may deliver a message twice; an id seen before is ignored.
        """
        if message.message_id in self._state.seen_message_ids:
            return
        self._state.seen_message_ids.append(message.message_id)
        if self._state.last_unanswered_at is None:
            self._state.last_unanswered_at = message.sent_at

    @workflow.run
    async def run(self, start: DialogStart) -> DialogState:
        while self._state.status not in ("closed", "spam"):
            self._set_deadlines()
            self._publish()
            deadline = self._next_deadline()
            timeout = None if deadline is None else max(deadline - workflow.now(), timedelta(0))
            self._planned_for = self._version()
            try:
                await workflow.wait_condition(self._event_arrived, timeout=timeout)
            except TimeoutError:
                self._on_deadline()
        self._state.deadlines = {}
        self._publish()
        return self._state

    def _event_arrived(self) -> bool:
        return self._version() != self._planned_for

    def _version(self) -> tuple[int, str]:
        """Changes when an event arrived: the main loop then re-plans its deadlines."""
        return len(self._state.seen_message_ids), self._state.status

    def _set_deadlines(self) -> None:
        deadlines: dict[str, datetime] = {}
        if self._state.last_unanswered_at is not None:
            deadlines["expiry"] = self._state.last_unanswered_at + EXPIRY
        self._state.deadlines = deadlines

    def _next_deadline(self) -> datetime | None:
        return min(self._state.deadlines.values(), default=None)

    def _on_deadline(self) -> None:
        now = workflow.now()
        expiry = self._state.deadlines.get("expiry")
        if expiry is not None and now >= expiry:
            self._state.status = "closed"
            self._state.close_reason = "expired"

    def _publish(self) -> None:
        """Keep the Temporal UI current: search attributes and a one-line summary."""
        state = self._state
        deadline = self._next_deadline()
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
            + (f", next deadline {deadline.isoformat()}" if deadline else "")
            + (f", closed: {state.close_reason}" if state.close_reason else "")
        )
