"""What goes into and comes out of a dialog workflow and its activities.

Message bodies stay in the database: the workflow sees ids and the few facts it decides on.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

Status = Literal[
    "new",
    "bot",
    "queued",
    "accepted",
    "client_waiting",
    "client_followup",
    "operator_replied",
    "closing",
    "closed",
    "spam",
]
CloseReason = Literal[
    "operator", "inactivity", "expired", "bot", "line_deleted", "duplicate", "rating"
]
FINAL_STATUSES = ("closed", "spam")
RatingValue = Literal["like", "dislike"]


class ClientMessage(BaseModel):
    """A client message the API committed; ``dialog_id`` is the dialog it was filed under."""

    message_id: int
    dialog_id: int
    sent_at: datetime
    # The text was a rating reply (``1`` like, ``0`` dislike) on a channel without buttons.
    rating: RatingValue | None = None
    # The text may hold a phone number or an email (the chat tracker reads it).
    contact_hint: bool = False


class DialogStart(BaseModel):
    """The facts a dialog run starts from."""

    dialog_id: int
    chat_id: int
    line_id: int
    channel_type: str
    # Messages of this dialog that reached the previous run of the chat's workflow.
    pending: list[ClientMessage] = []
    # A long dialog continues as new after this many history events, carrying its state.
    max_history_events: int = 10_000
    carried: "Carried | None" = None


class Routing(BaseModel):
    """A dialog's offer as the routing transaction left it in the database."""

    operator_id: int | None = None
    offered_to: list[int] = []
    offered_at: datetime | None = None
    handover_after: int = 60
    line_id: int
    line_active: bool = True
    check_availability: bool = False
    # The line's automatic actions, as of this routing transaction.
    no_answer_after: int | None = None  # when the dialog is marked unanswered; None: never
    inactivity_after: int = 14400
    off_hours_text: bool = False  # working hours are on and outside them a text goes
    # Availability checking found every member unavailable (the off-hours text goes).
    nobody_available: bool = False
    # KPI: seconds allowed for the first and for further operator answers (0: off).
    kpi_first_answer: int = 0
    kpi_further_answer: int = 0
    # Chat-bots: the bot the dialog is with (holding it, or staying after it handed over),
    # whether it took the dialog in this transaction, and after how long it hands the
    # dialog to the queue by itself (0: only when it asks).
    bot_id: int | None = None
    bot_took: bool = False
    bot_handover_after: int = 0
    # The dialog had already ended in the database (a message delivered again after its run
    # completed started this one): nothing was changed, and the run ends as the row says.
    final_status: "Status | None" = None
    final_reason: "CloseReason | None" = None


KpiItem = Literal["first_answer", "further_answer"]


class KpiNumbers(BaseModel):
    """A dialog's answer times in seconds, as the dialog list shows them."""

    first_answer_s: int | None = None
    total_answer_s: int = 0
    answers: int = 0
    max_answer_s: int | None = None
    overdue: int = 0  # KPI items answered late or not at all

    def answered(self, seconds: int) -> "KpiNumbers":
        """The numbers after one more answer that took ``seconds``."""
        return self.model_copy(
            update={
                "first_answer_s": seconds if self.first_answer_s is None else self.first_answer_s,
                "total_answer_s": self.total_answer_s + seconds,
                "answers": self.answers + 1,
                "max_answer_s": max(seconds, self.max_answer_s or 0),
            }
        )


class DialogState(BaseModel):
    """The full state, returned by the ``state`` query and by every action."""

    dialog_id: int
    chat_id: int
    line_id: int
    channel_type: str
    status: Status
    close_reason: CloseReason | None = None
    operator_id: int | None = None
    offered_to: list[int] = []
    answered: bool = False
    pinned: bool = False
    line_active: bool = True
    seen_message_ids: list[int] = []  # the latest ones; older ids are at most ``seen_up_to``
    seen_up_to: int = 0
    client_messages: int = 0  # in this dialog, over every run
    # The client's latest message that no operator has answered yet (the expiry counts from it).
    unanswered_since: datetime | None = None
    queued_since: datetime | None = None  # the no-answer timer counts from here
    # The current offer moves on at this time (``handover_after`` as it was when it was made).
    handover_at: datetime | None = None
    last_message_at: datetime | None = None  # the pinned timer counts from here
    operator_replied_at: datetime | None = None  # the inactivity timer counts from here
    greeted: bool = False
    no_answer_sent: bool = False
    off_hours_sent: bool = False
    consent_pending: bool = False
    # Closing: the close text and rating request went out; closed for good after rating_wait.
    closing_since: datetime | None = None
    rating_wait: int | None = None
    rating_requested: bool = False
    close_on_rating: bool = False
    rating: RatingValue | None = None
    closed_at: datetime | None = None
    # The chat tracker has seen the dialog's first message.
    tracked: bool = False
    # KPI: the client message the operator has yet to answer (the KPI timer counts from it).
    kpi_since: datetime | None = None
    kpi_overdue_told: bool = False  # the current KPI item was marked overdue
    kpi: KpiNumbers = KpiNumbers()
    # The chat-bot the dialog is with, and since when it holds it (the bot handover timer).
    bot_id: int | None = None
    bot_since: datetime | None = None
    # The dialog's database work has failed since then (an outage); it is tried again.
    stalled_since: datetime | None = None
    deadlines: dict[str, datetime] = {}


class ClientRating(BaseModel):
    """A client's rating: a widget button, or a ``1`` / ``0`` text (``message_id``)."""

    dialog_id: int
    value: RatingValue
    message_id: int | None = None
    at: datetime | None = None  # set by the workflow
    expires_at: datetime | None = None  # as ``OperatorAction.expires_at``


class RatingOutcome(BaseModel):
    recorded: bool
    reason: str = ""
    close_on_rating: bool = False


class Pending(BaseModel):
    """Work the workflow owes itself, carried over a continue-as-new."""

    queue: bool = False  # a dialog reopened while nobody held it goes back to the queue
    wake: bool = False
    check_owner: bool = False
    line_deleted: bool = False
    off_hours: bool = False  # nobody is available: the off-hours text is owed
    greeting: list[int] = []  # client messages the automatic replies have not seen yet
    track: list[int] = []  # client messages the chat tracker has not seen yet
    ratings: list[ClientRating] = []
    next_dialog: list[ClientMessage] = []  # messages for the chat's next dialog


class RoutingRequest(BaseModel):
    """Ask the routing transaction about one dialog, at the workflow's time."""

    dialog_id: int
    at: datetime
    # For a handover: the offer that timed out; a newer offer is left alone.
    offered_at: datetime | None = None
    # Joining the queue: the run, for the dialog row (version 4 writes it no other way).
    run_id: str | None = None
    # A new dialog: the line's chat-bot takes it first, if the line has one for it.
    bot_may_take: bool = False


class OperatorAction(BaseModel):
    """An action by an operator, or by a supervisor or admin (``by_supervisor``)."""

    dialog_id: int
    operator_id: int | None = None
    by_supervisor: bool = False
    at: datetime | None = None  # set by the workflow before the action reaches the database
    # The API answered (or will answer) that the action failed after this time: a workflow
    # that gets it later refuses it rather than applying an action its caller gave up on.
    expires_at: datetime | None = None


class Reply(OperatorAction):
    message_id: int
    # Set by the workflow when the reply answers a KPI item: the dialog's numbers after it.
    kpi: KpiNumbers | None = None


class BotAction(BaseModel):
    """An action by the chat-bot a ``bot`` key is bound to."""

    dialog_id: int
    bot_id: int
    at: datetime | None = None  # set by the workflow
    expires_at: datetime | None = None  # as ``OperatorAction.expires_at``


class BotReply(BotAction):
    message_id: int  # stored by the API before the update


class KpiOverdue(BaseModel):
    """A KPI item ran out: mark the dialog and notify as the line's settings say."""

    dialog_id: int
    item: KpiItem
    since: datetime  # the client message the item waits to have answered
    overdue: int  # the dialog's overdue count with this one
    at: datetime


class Transfer(OperatorAction):
    to_operator_id: int | None = None
    to_line_id: int | None = None


class ActionOutcome(BaseModel):
    """What the database said about an action: applied, or refused with a reason."""

    ok: bool
    reason: str = ""
    routing: Routing | None = None
    working_hours: bool | None = None  # for a reply: None when the line has no working hours


class ClientTurn(BaseModel):
    """New client messages, for the automatic replies: welcome, consent, off-hours."""

    dialog_id: int
    message_ids: list[int]
    first: bool  # the dialog's first message is among them
    off_hours_sent: bool
    at: datetime


class Tracked(BaseModel):
    """What the chat tracker made of new client messages (``activities/chat_tracker.py``)."""

    contact_id: int | None = None
    client_known: bool = False  # recognised at session start (or merged into a known contact)
    lead_requested: bool = False  # a lead is (now or already) owed for this dialog


class Greeting(BaseModel):
    off_hours_sent: bool
    consent_pending: bool


AutoTextKind = Literal["no_answer", "off_hours"]


class AutoText(BaseModel):
    """An automatic text the workflow decided to send; the line's settings give its words."""

    dialog_id: int
    kind: AutoTextKind
    at: datetime


class CloseRequest(BaseModel):
    dialog_id: int
    reason: CloseReason
    at: datetime


class Closing(BaseModel):
    """What the line's settings said when the dialog started closing."""

    rating_wait: int
    rating_requested: bool
    close_on_rating: bool


class Projection(BaseModel):
    """The dialog row's copy of workflow state, for lists and load counting."""

    dialog_id: int
    line_id: int
    status: Status
    close_reason: CloseReason | None = None
    operator_id: int | None = None
    pinned: bool = False
    run_id: str
    closed_at: datetime | None = None
    # A close is only written if the client has sent nothing the workflow has not seen:
    # every message id up to ``seen_up_to``, and these (in whatever order they came).
    seen_up_to: int = 0
    seen_message_ids: list[int] = []


class Carried(BaseModel):
    """Everything a dialog run holds, handed to its continuation."""

    state: DialogState
    routing: Routing | None
    pending: Pending


DialogStart.model_rebuild()


CrmTaskKind = Literal["create_lead", "reassign_lead"]


class CrmTask(BaseModel):
    """A committed outbox row for the CRM: create the dialog's lead (``lead``), or tell the
    external CRM who is now responsible for it (``lead_owner``)."""

    kind: CrmTaskKind
    dialog_id: int
    request_id: int  # the outbox row's id


class CrmOutcome(BaseModel):
    """What a CRM task did: the dialog's lead, or that the client was known (no lead)."""

    lead_id: int | None = None
    external_id: str | None = None
    client_known: bool = False
    responsible_pushed: bool = False  # the external CRM was given the lead's responsible
