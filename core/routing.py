"""Who gets a dialog: the routing transaction.

Every offer of a line is made under a lock on the line's row (PostgreSQL row lock; on SQLite
the write lock every transaction takes), with every operator's load counted inside the same
transaction. That is what keeps ``max_dialogs_per_operator`` true however many dialogs arrive
at once. Waiting dialogs are served oldest first: whoever calls ``assign_waiting`` offers the
whole line's queue, in order, and wakes the workflows of the dialogs it offered.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import get_settings
from core.events.publish import record
from core.line_settings import LineSettings, Queue
from core.models import (
    OPEN_DIALOG_STATUSES,
    DepartmentMember,
    Dialog,
    Line,
    Operator,
    Outbox,
)

# Statuses whose dialogs never count toward an operator's limit.
_NEVER_COUNTED = ("closing", "closed", "spam")
# Open dialogs routing may offer or move: a closing one stays with its owner until it closes
# or the client reopens it.
_ROUTED = tuple(status for status in OPEN_DIALOG_STATUSES if status != "closing")


@dataclass
class Candidate:
    """An operator who could be offered a dialog now, with what the pick needs to know."""

    id: int
    position: int  # in the queue's member order
    last_offered_at: datetime | None
    load: int = 0


@dataclass
class Pool:
    """The line's available operators, and every member's place in the queue's order."""

    candidates: list[Candidate]
    positions: dict[int, int]


@dataclass
class Assignment:
    """What one routing transaction changed: dialogs offered, and workflows to wake."""

    offered: dict[int, list[int]] = field(default_factory=dict)
    to_wake: set[int] = field(default_factory=set)


def is_available(operator: Operator, check_availability: bool, now: datetime) -> bool:
    """Fired operators never are; with availability checking, also not on vacation and with
    the workday started (not paused or ended) when the install tracks working time
    (``OPENLINES_WORKTIME_TRACKING``), otherwise online: one or the other, as the
    reference article has it, never both."""
    if operator.fired:
        return False
    if not check_availability:
        return True
    if operator.vacation_until is not None and operator.vacation_until > now:
        return False
    if get_settings().worktime_tracking:
        return operator.workday == "started"
    return operator.presence == "online"


async def member_ids(session: AsyncSession, queue: Queue) -> list[int]:
    """The queue's operators in member order; a department expands to its operators by id."""
    ordered: list[int] = []
    for member in queue.members:
        if member.type == "operator":
            ids: Iterable[int] = [member.id]
        else:
            ids = await session.scalars(
                select(DepartmentMember.operator_id)
                .where(DepartmentMember.department_id == member.id)
                .order_by(DepartmentMember.operator_id)
            )
        ordered.extend(i for i in ids if i not in ordered)
    return ordered


async def lock_line(session: AsyncSession, line_id: int) -> LineSettings:
    """Take the line's routing lock and return its current settings."""
    line = await session.scalar(select(Line).where(Line.id == line_id).with_for_update())
    if line is None:
        raise LookupError(f"line {line_id} does not exist")
    return LineSettings.model_validate(line.settings)


async def available_pool(
    session: AsyncSession, line_id: int, settings: LineSettings, now: datetime
) -> Pool:
    """Available members of the line's queue with their counted load, in member order."""
    ids = await member_ids(session, settings.queue)
    positions = {operator_id: position for position, operator_id in enumerate(ids)}
    if not ids:
        return Pool([], positions)
    operators = {
        o.id: o for o in await session.scalars(select(Operator).where(Operator.id.in_(ids)))
    }
    result = [
        Candidate(id=i, position=position, last_offered_at=operators[i].last_offered_at)
        for position, i in enumerate(ids)
        if i in operators and is_available(operators[i], settings.queue.check_availability, now)
    ]
    loads = await counted_loads(session, line_id, [c.id for c in result], settings.queue)
    for candidate in result:
        candidate.load = loads.get(candidate.id, 0)
    return Pool(result, positions)


async def counted_loads(
    session: AsyncSession, line_id: int, operator_ids: Sequence[int], queue: Queue
) -> dict[int, int]:
    """How many dialogs of this line count toward each operator's limit.

    A dialog counts for the operator who holds it (its owner, or the one operator it is
    offered to) unless the line's ``not_counted`` mode excludes it.
    """
    if not operator_ids:
        return {}
    query = (
        select(Dialog.holder_id, func.count())
        .where(
            Dialog.line_id == line_id,
            Dialog.holder_id.in_(operator_ids),
            Dialog.status.not_in(_NEVER_COUNTED),
        )
        .group_by(Dialog.holder_id)
    )
    if queue.not_counted == "answered":
        query = query.where(Dialog.answered.is_(False))
    elif queue.not_counted == "awaiting_client":
        query = query.where(Dialog.status != "operator_replied")
    return {holder: count for holder, count in (await session.execute(query)).all() if holder}


def pick(queue: Queue, pool: Pool, last_offered_id: int | None) -> list[Candidate]:
    """The operator(s) to offer one dialog to, by the line's distribution mode."""
    if queue.distribution == "all":
        return list(pool.candidates)  # the limit does not apply to `all`
    limit = queue.max_dialogs_per_operator
    free = [c for c in pool.candidates if limit == 0 or c.load < limit]
    if not free:
        return []
    if queue.distribution == "strictly":
        # The next member after the one offered last, looping back to the start.
        after = pool.positions.get(last_offered_id, -1) if last_offered_id else -1
        return [min(free, key=lambda c: (c.position <= after, c.position))]
    # evenly: least recently offered first; never offered counts as longest ago. The one who
    # just let this dialog go comes last, so a handover moves it on while anyone else is free.
    return [
        min(
            free,
            key=lambda c: (
                c.id == last_offered_id,
                c.last_offered_at is not None,
                c.last_offered_at,
                c.position,
            ),
        )
    ]


async def assign_waiting(
    session: AsyncSession, line_id: int, settings: LineSettings, now: datetime
) -> Assignment:
    """Offer the line's waiting dialogs, oldest first, while anyone can take them.

    Call with the line locked (``lock_line``). Wakes the offered dialogs' workflows through
    the outbox, so they learn of their offer even if this process dies right after commit.
    """
    assignment = Assignment()
    pool = await available_pool(session, line_id, settings, now)
    if not pool.candidates:
        return assignment
    waiting = await session.scalars(
        select(Dialog)
        .where(Dialog.line_id == line_id, Dialog.waiting_since.is_not(None))
        .where(Dialog.offered_at.is_(None), Dialog.operator_id.is_(None))  # not on offer
        .where(Dialog.status.in_(_ROUTED))
        .order_by(Dialog.waiting_since, Dialog.id)
    )
    by_id = {c.id: c for c in pool.candidates}
    for dialog in waiting:
        chosen = pick(settings.queue, pool, dialog.last_offered_id)
        if not chosen:
            if settings.queue.distribution != "all":
                break  # everyone is at their limit: younger dialogs cannot be served either
            continue
        offer(dialog, [c.id for c in chosen], settings.queue, now)
        record(session, "dialog.offered", dialog_id=dialog.id, operator_ids=dialog.offered_to)
        for candidate in chosen:
            by_id[candidate.id].last_offered_at = now
            if settings.queue.distribution != "all":
                by_id[candidate.id].load += 1
        assignment.offered[dialog.id] = dialog.offered_to
        assignment.to_wake.add(dialog.id)
    if assignment.offered:
        offered_ids = {i for ids in assignment.offered.values() for i in ids}
        for operator in await session.scalars(select(Operator).where(Operator.id.in_(offered_ids))):
            operator.last_offered_at = now
    return assignment


async def serve_queue(
    session: AsyncSession, dialog: Dialog, settings: LineSettings, now: datetime
) -> None:
    """Offer the dialog's line's waiting dialogs; wake every other dialog that got an offer
    (the caller answers for ``dialog`` itself)."""
    assignment = await assign_waiting(session, dialog.line_id, settings, now)
    wake(session, assignment.to_wake - {dialog.id})


async def nobody_available(
    session: AsyncSession, dialog: Dialog, settings: LineSettings, now: datetime
) -> bool:
    """With availability checking, a waiting dialog whose line has no available member."""
    if not settings.queue.check_availability or dialog.operator_id or dialog.offered_to:
        return False
    pool = await available_pool(session, dialog.line_id, settings, now)
    return not pool.candidates


def offer(dialog: Dialog, operator_ids: list[int], queue: Queue, now: datetime) -> None:
    dialog.offered_to = operator_ids
    dialog.offered_at = now
    dialog.holder_id = operator_ids[0] if queue.distribution != "all" else None
    dialog.last_offered_id = operator_ids[0]


def withdraw_offer(dialog: Dialog, now: datetime) -> None:
    """Back to the waiting queue, keeping its place (``waiting_since``)."""
    dialog.offered_to = []
    dialog.offered_at = None
    if dialog.operator_id is None:
        dialog.holder_id = None
        dialog.outside_queue = False
    if dialog.waiting_since is None:
        dialog.waiting_since = now


def leave_queue(dialog: Dialog) -> None:
    """The dialog is closing or closed: no offer and no place in the queue. Its owner keeps
    holding it (the status keeps it out of their load), so a client who reopens a closing
    dialog puts it back into their load."""
    dialog.offered_to = []
    dialog.offered_at = None
    dialog.waiting_since = None
    dialog.holder_id = dialog.operator_id


def requeue(dialog: Dialog, now: datetime) -> None:
    """The dialog loses its owner (if any) and its offer and waits in the queue again.

    Its status says so at once (the workflow writes the same when it learns of it), and it
    counts as unanswered for whoever takes it next: load counts go by both.
    """
    dialog.operator_id = None
    dialog.status = "queued"
    dialog.answered = False
    withdraw_offer(dialog, now)


def wake(session: AsyncSession, dialog_ids: Iterable[int]) -> None:
    """Owe each dialog's workflow a wake-up signal: re-read its offer from the database."""
    session.add_all(Outbox(kind="wake", dialog_id=dialog_id) for dialog_id in sorted(dialog_ids))


async def lines_with_member(session: AsyncSession, operator_id: int) -> list[int]:
    """Ids of live lines whose queue lists the operator, directly or through a department."""
    departments = set(
        await session.scalars(
            select(DepartmentMember.department_id).where(
                DepartmentMember.operator_id == operator_id
            )
        )
    )
    result = []
    for line in await session.scalars(select(Line).where(Line.deleted_at.is_(None))):
        for member in line.settings["queue"]["members"]:
            if (member["type"], member["id"]) == ("operator", operator_id) or (
                member["type"] == "department" and member["id"] in departments
            ):
                result.append(line.id)
                break
    return sorted(result)


async def rebalance_line(session: AsyncSession, line_id: int, now: datetime) -> set[int]:
    """Bring a line's offers in line with who is available now, then serve its queue.

    Offers to operators who are no longer available go back to the queue at once; dialogs
    owned by operators who were fired or removed from the queue go back too. Returns the
    dialogs whose workflows must re-read their offer (already owed through the outbox).
    """
    settings = await lock_line(session, line_id)
    members = await member_ids(session, settings.queue)
    dialogs = list(
        await session.scalars(
            select(Dialog).where(Dialog.line_id == line_id, Dialog.status.in_(_ROUTED))
        )
    )
    # Operators outside the queue who hold a dialog given to them (``Dialog.outside_queue``).
    outsiders = {
        i for d in dialogs if d.outside_queue for i in (d.operator_id, *d.offered_to) if i
    } - set(members)
    operators = {
        o.id: o
        for o in await session.scalars(
            select(Operator).where(Operator.id.in_(set(members) | outsiders))
        )
    }
    in_queue = set(members)
    check = settings.queue.check_availability

    def may_hold(operator_id: int, dialog: Dialog) -> bool:
        """Not fired, and in the queue unless the dialog was given to them outside it."""
        operator = operators.get(operator_id)
        return (
            operator is not None
            and not operator.fired
            and (operator_id in in_queue or dialog.outside_queue)
        )

    def available(operator_id: int, dialog: Dialog) -> bool:
        # An operator outside the queue is always held to the full availability rule.
        return may_hold(operator_id, dialog) and is_available(
            operators[operator_id], check or operator_id not in in_queue, now
        )

    changed: set[int] = set()
    for dialog in dialogs:
        if dialog.operator_id is not None:
            if not may_hold(dialog.operator_id, dialog):
                requeue(dialog, now)
                changed.add(dialog.id)
        elif dialog.offered_to and not all(available(i, dialog) for i in dialog.offered_to):
            still = [i for i in dialog.offered_to if available(i, dialog)]
            if still and settings.queue.distribution == "all":
                dialog.offered_to = still
            else:
                withdraw_offer(dialog, now)
            changed.add(dialog.id)
    assignment = await assign_waiting(session, line_id, settings, now)
    woken = changed | assignment.to_wake
    wake(session, woken)
    return woken


async def settings_changed(session: AsyncSession, line_id: int, now: datetime) -> None:
    """A line's settings changed: rebalance its offers and wake every open dialog, so each
    takes on the new rules at once (timers, texts, availability checking)."""
    woken = await rebalance_line(session, line_id, now)
    open_dialogs = await session.scalars(
        select(Dialog.id).where(Dialog.line_id == line_id, Dialog.status.in_(OPEN_DIALOG_STATUSES))
    )
    wake(session, set(open_dialogs) - woken)


async def operator_changed(session: AsyncSession, operator_id: int, now: datetime) -> set[int]:
    """An operator came, went, was fired or returned: rebalance every line they are in.

    A fired operator's dialogs in lines that no longer list them go back to the queue too.
    """
    line_ids = set(await lines_with_member(session, operator_id))
    # Lines where they hold or are offered a dialog given to them outside the queue.
    outside = await session.scalars(
        select(Dialog.line_id)
        .where(Dialog.outside_queue.is_(True), Dialog.status.in_(OPEN_DIALOG_STATUSES))
        .where(Dialog.holder_id == operator_id)
    )
    line_ids |= set(outside)
    operator = await session.get(Operator, operator_id)
    if operator is not None and operator.fired:
        line_ids |= set(
            await session.scalars(
                select(Dialog.line_id).where(
                    Dialog.operator_id == operator_id, Dialog.status.in_(OPEN_DIALOG_STATUSES)
                )
            )
        )
    woken: set[int] = set()
    for line_id in sorted(line_ids):
        woken |= await rebalance_line(session, line_id, now)
    return woken
