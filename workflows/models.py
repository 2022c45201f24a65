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


class ClientMessage(BaseModel):
    """A client message the API committed; ``dialog_id`` is the dialog it was filed under."""

    message_id: int
    dialog_id: int
    sent_at: datetime


class DialogStart(BaseModel):
    """The facts a dialog run starts from."""

    dialog_id: int
    chat_id: int
    line_id: int
    channel_type: str
    # Messages of this dialog that reached the previous run of the chat's workflow.
    pending: list[ClientMessage] = []


class Routing(BaseModel):
    """A dialog's offer as the routing transaction left it in the database."""

    operator_id: int | None = None
    offered_to: list[int] = []
    offered_at: datetime | None = None
    handover_after: int = 60
    line_id: int
    line_active: bool = True
    check_availability: bool = False


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
    seen_message_ids: list[int] = []
    # The client's latest message that no operator has answered yet (the expiry counts from it).
    unanswered_since: datetime | None = None
    deadlines: dict[str, datetime] = {}


class RoutingRequest(BaseModel):
    """Ask the routing transaction about one dialog, at the workflow's time."""

    dialog_id: int
    at: datetime
    # For a handover: the offer that timed out; a newer offer is left alone.
    offered_at: datetime | None = None


class OperatorAction(BaseModel):
    """An action by an operator, or by a supervisor or admin (``by_supervisor``)."""

    dialog_id: int
    operator_id: int | None = None
    by_supervisor: bool = False
    at: datetime | None = None  # set by the workflow before the action reaches the database


class Reply(OperatorAction):
    message_id: int


class Transfer(OperatorAction):
    to_operator_id: int | None = None
    to_line_id: int | None = None


class ActionOutcome(BaseModel):
    """What the database said about an action: applied, or refused with a reason."""

    ok: bool
    reason: str = ""
    routing: Routing | None = None


class Projection(BaseModel):
    """The dialog row's copy of workflow state, for lists and load counting."""

    dialog_id: int
    line_id: int
    status: Status
    close_reason: CloseReason | None = None
    operator_id: int | None = None
    answered: bool = False
    pinned: bool = False
    run_id: str
    closed_at: datetime | None = None
    # A close is only written if the client has sent nothing the workflow has not seen.
    last_seen_message_id: int | None = None
