"""``workflows.timers.deadlines``, table-driven: which timers run for a dialog's state and its
line's rules, and when each is due. No workflow, no database."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workflows import timers
from workflows.models import DialogState, Routing

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def state(**fields: Any) -> DialogState:
    return DialogState(dialog_id=1, chat_id=1, line_id=1, channel_type="api", **fields)


# name, the dialog's state, the line's rules (None: not routed yet), the deadlines expected
CASES: list[tuple[str, DialogState, Routing | None, dict[str, datetime]]] = [
    (
        "new dialog, unanswered: expiry from the message",
        state(status="new", unanswered_since=T, last_message_at=T),
        None,
        {"expiry": T + timers.EXPIRY},
    ),
    (
        "queued and offered: handover, no-answer, expiry",
        state(
            status="queued",
            unanswered_since=T,
            last_message_at=T,
            queued_since=T,
            offered_to=[2],
            handover_at=T + 60 * S,
        ),
        Routing(line_id=1, no_answer_after=30, offered_to=[2], offered_at=T),
        {"expiry": T + timers.EXPIRY, "handover": T + 60 * S, "no_answer": T + 30 * S},
    ),
    (
        "no-answer already sent: no second one",
        state(status="queued", unanswered_since=T, queued_since=T, no_answer_sent=True),
        Routing(line_id=1, no_answer_after=30),
        {"expiry": T + timers.EXPIRY},
    ),
    (
        "operator replied: inactivity, expiry from the last message behind it",
        state(
            status="operator_replied",
            operator_id=2,
            last_message_at=T,
            operator_replied_at=T,
        ),
        Routing(line_id=1, operator_id=2, inactivity_after=3600),
        {"expiry": T + timers.EXPIRY, "inactivity": T + 3600 * S},
    ),
    (
        "accepted after a transfer following a reply: inactivity from that reply",
        state(status="accepted", operator_id=3, last_message_at=T, operator_replied_at=T),
        Routing(line_id=1, operator_id=3, inactivity_after=600),
        {"expiry": T + timers.EXPIRY, "inactivity": T + 600 * S},
    ),
    (
        "client wrote after the reply: expiry from that message, no inactivity",
        state(
            status="client_followup",
            operator_id=2,
            unanswered_since=T + 5 * S,
            last_message_at=T + 5 * S,
            operator_replied_at=T,
        ),
        Routing(line_id=1, operator_id=2),
        {"expiry": T + 5 * S + timers.EXPIRY},
    ),
    (
        "re-queued after a reply, nobody holds it: expiry from the last message",
        state(status="queued", last_message_at=T, operator_replied_at=T, queued_since=T),
        Routing(line_id=1),
        {"expiry": T + timers.EXPIRY},
    ),
    (
        "pinned: 7 days after the last message instead of inactivity",
        state(
            status="operator_replied",
            operator_id=2,
            pinned=True,
            last_message_at=T,
            operator_replied_at=T,
        ),
        Routing(line_id=1, operator_id=2),
        {"expiry": T + timers.EXPIRY, "pinned": T + timers.PINNED},
    ),
    (
        "closing: only the rating wait",
        state(status="closing", operator_id=2, closing_since=T, rating_wait=600, last_message_at=T),
        Routing(line_id=1, operator_id=2),
        {"rating_wait": T + 600 * S},
    ),
    (
        "with the bot: its handover and the expiry",
        state(status="bot", unanswered_since=T, last_message_at=T, bot_since=T),
        Routing(line_id=1, bot_handover_after=120),
        {"expiry": T + timers.EXPIRY, "bot_handover": T + 120 * S},
    ),
    (
        "KPI first answer while nobody has answered",
        state(status="queued", unanswered_since=T, kpi_since=T),
        Routing(line_id=1, kpi_first_answer=300),
        {"expiry": T + timers.EXPIRY, "kpi_first_answer": T + 300 * S},
    ),
    (
        "KPI further answer once answered; none once told overdue",
        state(
            status="client_followup",
            operator_id=2,
            answered=True,
            unanswered_since=T,
            kpi_since=T,
            kpi_overdue_told=True,
        ),
        Routing(line_id=1, operator_id=2, kpi_further_answer=300),
        {"expiry": T + timers.EXPIRY},
    ),
]


@pytest.mark.parametrize(
    ("dialog", "routing", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_deadlines(dialog: DialogState, routing: Routing | None, expected: dict[str, datetime]):
    due = timers.deadlines(dialog, routing)
    assert due == expected
    assert timers.has_ending(due)
