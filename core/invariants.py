"""The design's invariants (spec/design.md, "Invariants"), checked against a running system.

Each check reads what is really there: the database rows and the dialog workflows (the
``state`` query of each chat's running run ``chat-<chat id>``). ``check_invariants`` returns
every violation as one line of text, so a test can print them all at once; the model-based
test (``tests/workflows/test_model.py``) calls it after every step.

Some invariants are about change over time (a closed dialog's row never changes, routing
never pushes an operator over the limit), so a ``Memory`` carries what one check saw to the
next: pass the same one to every check of a run.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from core.line_settings import LineSettings, Queue
from core.models import CLOSED_DIALOG_STATUSES, Dialog, Line, Message, Outbox
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import DialogState

# Deadlines that end a dialog (design.md, invariant 8); handover, no-answer and KPI
# deadlines only move it on or tell someone.
ENDING_DEADLINES = frozenset({"expiry", "inactivity", "pinned", "rating_wait", "bot_handover"})
# Statuses that never count toward an operator's limit, whatever the line's mode.
NEVER_COUNTED = frozenset({"closing", *CLOSED_DIALOG_STATUSES})
RPC_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True)
class ClosedRow:
    """What a closed dialog's row must keep for good."""

    status: str
    close_reason: str | None
    closed_at: datetime | None


@dataclass(frozen=True)
class Holding:
    """An operator holds a dialog of a line (owns it, or is the one operator it is offered to)."""

    line_id: int
    operator_id: int
    dialog_id: int


@dataclass
class Memory:
    """What a check leaves for the next: closed rows, and who held what (and whether it counted)."""

    closed: dict[int, ClosedRow] = field(default_factory=dict)
    held: dict[Holding, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ClientText:
    """A client message row: where it was filed and under which channel id."""

    id: int
    chat_id: int
    dialog_id: int
    external_id: str | None


@dataclass
class Run:
    """The running run of a chat's workflow, and its state (None when the query failed)."""

    run_id: str
    state: DialogState | None
    error: str | None = None


@dataclass
class World:
    """One reading of the database and the workflows that every check works from."""

    queues: dict[int, Queue]
    dialogs: list[Dialog]
    replied: set[tuple[int, int]]  # (dialog id, operator id): the operator wrote in the dialog
    client_texts: list[ClientText]
    undelivered: int  # outbox rows the relay has not delivered yet
    runs: dict[int, Run]  # chat id -> its running run; a chat with none is absent

    @property
    def quiet(self) -> bool:
        """Nothing is on its way to a workflow, so rows and workflows should agree."""
        return self.undelivered == 0


async def check_invariants(
    sessions: async_sessionmaker[AsyncSession], client: Client, memory: Memory | None = None
) -> list[str]:
    """Every violation of the design's invariants now, one line each (empty: all hold).

    Checks that compare rows with workflows (an open dialog has a run, its state agrees with
    the row, every client message was seen) apply only once the outbox is delivered; the
    caller waits for that and for the workflows to go idle. ``memory`` is updated for the next
    check: pass the same one throughout a run (a fresh one treats every holding as new).
    """
    memory = memory if memory is not None else Memory()
    world = await observe(sessions, client)
    violations = [
        *capacity_holds(world, memory),
        *open_dialogs_have_an_ending_deadline(world),
        *ended_is_ended(world, memory),
        *messages_stored_once_and_seen(world),
        *rows_agree_with_workflows(world),
    ]
    remember(world, memory)
    return violations


# ---- reading --------------------------------------------------------------------------------


async def observe(sessions: async_sessionmaker[AsyncSession], client: Client) -> World:
    """Read every line, dialog and client message, then each chat's running run."""
    async with sessions() as session:
        queues = {
            line.id: LineSettings.model_validate(line.settings).queue
            for line in await session.scalars(select(Line))
        }
        dialogs = list(await session.scalars(select(Dialog).order_by(Dialog.id)))
        replied = {
            (dialog_id, operator_id)
            for dialog_id, operator_id in await session.execute(
                select(Message.dialog_id, Message.operator_id)
                .where(Message.author == "operator")
                .distinct()
            )
            if operator_id is not None
        }
        client_texts = [
            ClientText(*row)
            for row in await session.execute(
                select(Message.id, Message.chat_id, Message.dialog_id, Message.external_id)
                .where(Message.author == "client")
                .order_by(Message.id)
            )
        ]
        undelivered = await session.scalar(
            select(func.count()).select_from(Outbox).where(Outbox.delivered_at.is_(None))
        )
    runs: dict[int, Run] = {}
    for chat_id in sorted({d.chat_id for d in dialogs}):
        run = await running_run(client, chat_id)
        if run is not None:
            runs[chat_id] = run
    return World(queues, dialogs, replied, client_texts, undelivered or 0, runs)


async def running_run(client: Client, chat_id: int) -> Run | None:
    """The chat's running run with its state; None when no run of the chat is running."""
    handle = client.get_workflow_handle_for(DialogWorkflow.run, workflow_id(chat_id))
    try:
        described = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if described.status != WorkflowExecutionStatus.RUNNING:
        return None
    try:
        state = await handle.query(DialogWorkflow.state, rpc_timeout=RPC_TIMEOUT)
    except Exception as error:  # a failing workflow task fails its queries too
        return Run(described.run_id, None, f"{type(error).__name__}: {error}")
    return Run(described.run_id, state)


def remember(world: World, memory: Memory) -> None:
    """Keep closed rows and this reading's holdings for the next check."""
    for dialog in world.dialogs:
        if dialog.status in CLOSED_DIALOG_STATUSES and dialog.id not in memory.closed:
            memory.closed[dialog.id] = closed_row(dialog)
    memory.held = dict(holdings(world))


def closed_row(dialog: Dialog) -> ClosedRow:
    return ClosedRow(dialog.status, dialog.close_reason, dialog.closed_at)


def is_open(dialog: Dialog) -> bool:
    return dialog.status not in CLOSED_DIALOG_STATUSES


def open_dialogs(world: World) -> Iterable[Dialog]:
    return (d for d in world.dialogs if is_open(d))


# ---- invariant 2: capacity holds --------------------------------------------------------------


def holder(dialog: Dialog, queue: Queue) -> int | None:
    """Who the dialog takes a place from: its owner, or the one operator it is offered to
    (an offer to everyone under distribution `all` takes nobody's place)."""
    if dialog.operator_id is not None:
        return dialog.operator_id
    if len(dialog.offered_to) == 1 and queue.distribution != "all":
        return dialog.offered_to[0]
    return None


def counts(dialog: Dialog, operator_id: int, queue: Queue, replied: set[tuple[int, int]]) -> bool:
    """Whether the dialog counts toward the operator's limit under the line's ``not_counted``
    (spec/settings.md): `answered` leaves out dialogs the operator has replied to at least
    once, `awaiting_client` those where the operator wrote last, `closed` only closing and
    closed ones (which never count)."""
    if dialog.status in NEVER_COUNTED:
        return False
    if queue.not_counted == "answered":
        return (dialog.id, operator_id) not in replied
    if queue.not_counted == "awaiting_client":
        return dialog.status != "operator_replied"
    return True


def holdings(world: World) -> Iterable[tuple[Holding, bool]]:
    """Every open dialog's holding, with whether it counts toward the holder's limit."""
    for dialog in open_dialogs(world):
        queue = world.queues.get(dialog.line_id)
        if queue is None or (operator_id := holder(dialog, queue)) is None:
            continue
        holding = Holding(dialog.line_id, operator_id, dialog.id)
        yield holding, counts(dialog, operator_id, queue, world.replied)


def capacity_holds(world: World, memory: Memory) -> list[str]:
    """Invariant 2, capacity holds: routing never leaves an operator over the limit.

    The load is what ``routing.counted_loads`` should see: the counted dialogs of the line an
    operator holds, transfers included. Two things may lift it over the limit by design, so
    the check fires only when a dialog came to the operator *by routing* since the last check
    and the load is then over ``max_dialogs_per_operator``:

    - a person's decision: a transfer or intercept gives the dialog to the new owner whatever
      their load (``Dialog.outside_queue``, also set for a CRM responsible's offer); such a
      holding counts in the load but never fires the check;
    - a client: a dialog held before that did not count may count again (`awaiting_client`
      after the client writes back, a closing dialog reopened); such a dialog is left out of
      the load, as routing may have served the operator before the client wrote.

    Lines with no limit (0) or with distribution `all` (the limit does not apply) are skipped.
    """
    by_operator: dict[tuple[int, int], list[tuple[Holding, bool]]] = defaultdict(list)
    for holding, counted in holdings(world):
        by_operator[holding.line_id, holding.operator_id].append((holding, counted))
    dialogs = {d.id: d for d in world.dialogs}
    violations = []
    for (line_id, operator_id), held in sorted(by_operator.items()):
        queue = world.queues[line_id]
        limit = queue.max_dialogs_per_operator
        if limit == 0 or queue.distribution == "all":
            continue
        routed_now = [
            h.dialog_id
            for h, counted in held
            if counted and h not in memory.held and not dialogs[h.dialog_id].outside_queue
        ]
        load = [h.dialog_id for h, counted in held if counted and memory.held.get(h, True)]
        if routed_now and len(load) > limit:
            violations.append(
                f"[2 capacity] line {line_id}: operator {operator_id} holds {len(load)} counted "
                f"dialogs {load} (limit {limit}, not_counted {queue.not_counted}) after routing "
                f"gave them {routed_now}"
            )
    return violations


# ---- invariant 8: every open dialog has an ending deadline ------------------------------------


def open_dialogs_have_an_ending_deadline(world: World) -> list[str]:
    """Invariant 8: every open dialog's workflow shows a deadline that closes it."""
    violations = []
    for dialog in open_dialogs(world):
        run = world.runs.get(dialog.chat_id)
        if run is None or run.state is None or run.state.dialog_id != dialog.id:
            if world.quiet:
                seen = "no running run" if run is None else describe_run(run)
                violations.append(f"[8 deadline] open dialog {dialog.id} has {seen}")
            continue
        state = run.state
        if state.status in CLOSED_DIALOG_STATUSES:
            continue  # ended in the workflow; the row is behind (checked when quiet)
        if not ENDING_DEADLINES & state.deadlines.keys():
            violations.append(
                f"[8 deadline] dialog {dialog.id} ({state.status}, operator {state.operator_id},"
                f" offered {state.offered_to}) has no ending deadline: {sorted(state.deadlines)}"
            )
    return violations


def describe_run(run: Run) -> str:
    if run.state is None:
        return f"a run whose state query failed ({run.error})"
    return f"the running run of dialog {run.state.dialog_id} ({run.state.status})"


# ---- invariant 9: ended is ended --------------------------------------------------------------


def ended_is_ended(world: World, memory: Memory) -> list[str]:
    """Invariant 9, ended is ended: no run for a closed dialog, and its row never changes."""
    violations = []
    for dialog in world.dialogs:
        before = memory.closed.get(dialog.id)
        if before is not None and closed_row(dialog) != before:
            violations.append(
                f"[9 ended] closed dialog {dialog.id} changed: {before} -> {closed_row(dialog)}"
            )
        if is_open(dialog):
            continue
        run = world.runs.get(dialog.chat_id)
        if run is not None and (run.state is None or run.state.dialog_id <= dialog.id):
            violations.append(
                f"[9 ended] {dialog.status} dialog {dialog.id} (chat {dialog.chat_id}) has "
                f"{describe_run(run)}"
            )
    return violations


# ---- invariant 1: nothing lost ----------------------------------------------------------------


def messages_stored_once_and_seen(world: World) -> list[str]:
    """Invariant 1, nothing lost: a client message is stored once and its dialog saw it."""
    violations = []
    copies: dict[tuple[int, str], list[int]] = defaultdict(list)
    for text in world.client_texts:
        if text.external_id is not None:
            copies[text.chat_id, text.external_id].append(text.id)
    for (chat_id, external_id), ids in sorted(copies.items()):
        if len(ids) > 1:
            violations.append(
                f"[1 nothing lost] chat {chat_id} stores message {external_id!r} {len(ids)} "
                f"times: {ids}"
            )
    if not world.quiet:
        return violations
    dialogs = {d.id: d for d in world.dialogs}
    for text in world.client_texts:
        dialog = dialogs[text.dialog_id]
        run = world.runs.get(dialog.chat_id)
        if not is_open(dialog) or run is None or run.state is None:
            continue  # a closed dialog's close waited for every message (and 8 names no run)
        state = run.state
        if state.dialog_id == dialog.id and not seen(state, text.id):
            violations.append(
                f"[1 nothing lost] message {text.id} of open dialog {dialog.id} never reached "
                f"its workflow (seen up to {state.seen_up_to}, then {state.seen_message_ids})"
            )
    return violations


def seen(state: DialogState, message_id: int) -> bool:
    return message_id <= state.seen_up_to or message_id in state.seen_message_ids


# ---- rows and workflows agree -----------------------------------------------------------------


def rows_agree_with_workflows(world: World) -> list[str]:
    """Invariants 1 and 4: once quiet, each open dialog's row shows its workflow's state."""
    if not world.quiet:
        return []
    violations = []
    for dialog in open_dialogs(world):
        run = world.runs.get(dialog.chat_id)
        if run is None or run.state is None or run.state.dialog_id != dialog.id:
            continue  # named by the deadline check
        state = run.state
        row = (dialog.status, dialog.operator_id, dialog.line_id)
        workflow = (state.status, state.operator_id, state.line_id)
        if row != workflow:
            violations.append(
                f"[4 agree] dialog {dialog.id}: row (status, operator, line) {row} but "
                f"workflow {workflow}"
            )
    return violations
