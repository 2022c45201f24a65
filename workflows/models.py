"""What goes into and comes out of a dialog workflow. Message bodies stay in the database:
the workflow sees ids and the few facts it decides on."""

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


class DialogStart(BaseModel):
    """The facts a dialog starts from; the line settings arrive with each event that needs them."""

    dialog_id: int
    chat_id: int
    line_id: int
    channel_type: str


class ClientMessage(BaseModel):
    message_id: int
    sent_at: datetime


class DialogState(BaseModel):
    """The full state, returned by the ``state`` query and shown to ops."""

    dialog_id: int
    chat_id: int
    line_id: int
    channel_type: str
    status: Status
    close_reason: CloseReason | None = None
    operator_id: int | None = None
    seen_message_ids: list[int] = []
    last_unanswered_at: datetime | None = None
    deadlines: dict[str, datetime] = {}
