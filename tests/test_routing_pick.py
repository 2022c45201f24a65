"""``core.routing.pick``, case by case: whom one dialog is offered to, given the line's
distribution mode and limit and each available operator's load and last offer.

Pure function, no database: each row is an available pool (in member order), the mode, the
limit, who was offered this dialog last, and the operator ids expected."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from core.line_settings import Queue
from core.routing import Candidate, Pool, pick

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def op(
    operator_id: int, position: int, offered_minute: int | None = None, load: int = 0
) -> Candidate:
    """An available operator at ``position`` in the queue, last offered a dialog at
    ``T0 + offered_minute`` (never, without one), holding ``load`` counted dialogs."""
    offered = None if offered_minute is None else T0 + timedelta(minutes=offered_minute)
    return Candidate(id=operator_id, position=position, last_offered_at=offered, load=load)


@dataclass(frozen=True)
class Case:
    name: str
    distribution: Literal["evenly", "strictly", "all"]
    available: list[Candidate]
    expected: list[int]
    limit: int = 0  # max_dialogs_per_operator; 0 is no limit
    last_offered_id: int | None = None  # offered this dialog last (a handover, a skip)
    # Every member's position, the unavailable too; by default the available ones'.
    positions: dict[int, int] = field(default_factory=dict)


CASES = [
    # evenly: least recently offered first
    Case("evenly: never offered goes first", "evenly", [op(1, 0, 5), op(2, 1)], [2]),
    Case(
        "evenly: least recently offered first",
        "evenly",
        [op(1, 0, 5), op(2, 1, 1), op(3, 2, 3)],
        [2],
    ),
    Case(
        "evenly: never offered ties go by member order, not id",
        "evenly",
        [op(7, 0), op(3, 1)],
        [7],
    ),
    Case(
        "evenly: same offer time ties go by member order",
        "evenly",
        [op(4, 0, 2), op(5, 1, 2)],
        [4],
    ),
    Case(
        "evenly: load below the limit does not weigh, offer time does",
        "evenly",
        [op(1, 0, 9, load=0), op(2, 1, 1, load=3)],
        [2],
        limit=5,
    ),
    Case(
        "evenly: at the limit is skipped",
        "evenly",
        [op(1, 0, load=2), op(2, 1, 9, load=1)],
        [2],
        limit=2,
    ),
    Case("evenly: limit 0 means no limit", "evenly", [op(1, 0, load=500)], [1]),
    Case(
        "evenly: who just let the dialog go comes last, though never offered before",
        "evenly",
        [op(1, 0), op(2, 1, 9)],
        [2],
        last_offered_id=1,
    ),
    Case(
        "evenly: who just let the dialog go gets it back when alone",
        "evenly",
        [op(1, 0, 9)],
        [1],
        last_offered_id=1,
    ),
    Case(
        "evenly: who just let the dialog go gets it back when the others are at the limit",
        "evenly",
        [op(1, 0, 9), op(2, 1, load=1)],
        [1],
        limit=1,
        last_offered_id=1,
    ),
    Case(
        "evenly: everyone at the limit means nobody",
        "evenly",
        [op(1, 0, load=1), op(2, 1, load=3)],
        [],
        limit=1,
    ),
    Case("evenly: nobody available means nobody", "evenly", [], []),
    # strictly: member order, starting after the one offered last
    Case(
        "strictly: first member when nobody was offered it yet",
        "strictly",
        [op(1, 0, 9), op(2, 1), op(3, 2)],
        [1],
    ),
    Case(
        "strictly: next member after the one offered last",
        "strictly",
        [op(1, 0), op(2, 1), op(3, 2)],
        [2],
        last_offered_id=1,
    ),
    Case(
        "strictly: ignores offer times",
        "strictly",
        [op(1, 0), op(2, 1, 9), op(3, 2)],
        [2],
        last_offered_id=1,
    ),
    Case(
        "strictly: wraps around after the last member",
        "strictly",
        [op(1, 0), op(2, 1), op(3, 2)],
        [1],
        last_offered_id=3,
    ),
    Case(
        "strictly: skips a member at the limit",
        "strictly",
        [op(1, 0), op(2, 1, load=2), op(3, 2)],
        [3],
        limit=2,
        last_offered_id=1,
    ),
    Case(
        "strictly: wraps around past members at the limit",
        "strictly",
        [op(1, 0), op(2, 1, load=1), op(3, 2, load=1)],
        [1],
        limit=1,
        last_offered_id=2,
    ),
    Case(
        "strictly: after an unavailable member offered last comes the next available one",
        "strictly",
        [op(1, 0), op(3, 2)],
        [3],
        last_offered_id=2,
        positions={1: 0, 2: 1, 3: 2},
    ),
    Case(
        "strictly: one offered last who left the queue starts it over",
        "strictly",
        [op(1, 0), op(2, 1)],
        [1],
        last_offered_id=99,
    ),
    Case(
        "strictly: who just let the dialog go gets it back when alone",
        "strictly",
        [op(2, 1)],
        [2],
        last_offered_id=2,
        positions={1: 0, 2: 1},
    ),
    Case(
        "strictly: everyone at the limit means nobody",
        "strictly",
        [op(1, 0, load=1)],
        [],
        limit=1,
    ),
    # all: everyone available at once
    Case("all: every available member, in member order", "all", [op(1, 0), op(2, 1)], [1, 2]),
    Case(
        "all: ignores the limit and the load",
        "all",
        [op(1, 0, load=5), op(2, 1, load=1)],
        [1, 2],
        limit=1,
    ),
    Case(
        "all: includes who just let the dialog go",
        "all",
        [op(1, 0, 9), op(2, 1)],
        [1, 2],
        last_offered_id=1,
    ),
    Case("all: nobody available means nobody", "all", [], []),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_pick(case: Case) -> None:
    queue = Queue(distribution=case.distribution, max_dialogs_per_operator=case.limit)
    positions = case.positions or {c.id: c.position for c in case.available}
    pool = Pool(candidates=list(case.available), positions=positions)

    chosen = pick(queue, pool, case.last_offered_id)

    assert [c.id for c in chosen] == case.expected


def test_pick_changes_nothing_in_the_pool() -> None:
    """Routing counts the offer itself (load, offer time) after the pick."""
    pool = Pool(candidates=[op(1, 0, 3, load=1), op(2, 1)], positions={1: 0, 2: 1})

    pick(Queue(distribution="evenly", max_dialogs_per_operator=2), pool, None)

    assert pool == Pool(candidates=[op(1, 0, 3, load=1), op(2, 1)], positions={1: 0, 2: 1})
