"""Model-based test: random clients, operators, admins, worker restarts and time jumps against
the real workflows, worker, relay and routing, with the design's invariants checked after
every step (``core/invariants.py``).

Hypothesis picks the steps (a ``RuleBasedStateMachine``) and shrinks a failure to a short
sequence. Each example gets its own event loop, database copy, Temporal server (the
time-skipping test server, for time jumps, or the dev server, for worker restarts), worker
and relay (``model_steps.System``); after each step the system is left to settle (outbox
delivered, workflows idle, nothing changing) before the invariants are read.

Environment:
- ``OPENLINES_MODEL_EXAMPLES`` examples (default 6) of up to ``OPENLINES_MODEL_STEPS`` steps
  (default 25); thousands: ``OPENLINES_MODEL_EXAMPLES=2000``.
- ``OPENLINES_MODEL_SEED``: the seed to run again (a failure prints the one it used).
- ``OPENLINES_MODEL_RACES``: client-writes-during-an-action steps per example (default 1;
  each holds the database for 9 s).
- ``OPENLINES_MODEL_SHRINK=0``: report the first failure as found, without shrinking it.
- ``OPENLINES_MODEL_VERBOSE=1`` (with ``pytest -s``): print each example's steps.
"""

import asyncio
import os
import random
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.inbound import Filed
from core.invariants import (
    Memory,
    Run,
    World,
    capacity_holds,
    check_invariants,
    ended_is_ended,
    open_dialogs_have_an_ending_deadline,
    remember,
)
from core.line_settings import Queue
from core.migrate import upgrade
from core.models import Channel, Dialog
from tests.workflows.model_steps import ACTIONS, Act, NotQuiet, System
from workflows.dialog import DialogWorkflow, workflow_id
from workflows.models import DialogState

T = TypeVar("T")

EXAMPLES = int(os.environ.get("OPENLINES_MODEL_EXAMPLES", "6"))
STEPS = int(os.environ.get("OPENLINES_MODEL_STEPS", "25"))
SEED = os.environ.get("OPENLINES_MODEL_SEED")
RACES = int(os.environ.get("OPENLINES_MODEL_RACES", "1"))
SHRINK = os.environ.get("OPENLINES_MODEL_SHRINK", "1") != "0"
# Print each example's steps as it ends (with pytest -s).
VERBOSE = os.environ.get("OPENLINES_MODEL_VERBOSE", "0") != "0"

OPERATORS = 4
CHATS = 8  # at most: fewer clients meet more often


@dataclass(frozen=True)
class LineSpec:
    """A line of the model: its members (operator indexes) and settings."""

    members: tuple[int, ...]
    queue: dict[str, Any]
    settings: dict[str, Any]


# Small limits, each not_counted mode, both limited distributions; CRM off (no responsible
# operator's offers in the way of the queue's).
LINES = (
    LineSpec(
        (0, 1),
        {"max_dialogs_per_operator": 1, "not_counted": "answered", "distribution": "evenly"},
        {"rating_wait": 600},
    ),
    LineSpec(
        (1, 2),
        {
            "max_dialogs_per_operator": 2,
            "not_counted": "awaiting_client",
            "distribution": "strictly",
            "check_availability": False,
        },
        {"rating_wait": 0},
    ),
    LineSpec(
        (2, 3),
        {"max_dialogs_per_operator": 1, "not_counted": "closed"},
        {"rating_wait": 600, "no_answer": {"action": "text"}},
    ),
)
# A long handover: each one is a workflow task and routing transactions, so days of workflow
# time over a short one would take minutes (``System.affordable`` caps a jump as well).
COMMON_QUEUE = {"handover_after": 43200, "check_availability": True}
COMMON_SETTINGS = {"crm": {"enabled": False}}

CHANGES: dict[str, dict[str, Any]] = {
    "goes offline": {"presence": "offline"},
    "comes online": {"presence": "online"},
    "pauses the workday": {"workday": "paused"},
    "ends the workday": {"workday": "ended"},
    "starts the workday": {"workday": "started"},
    "goes on vacation for a day": {"vacation_until": timedelta(days=1)},
    "returns from vacation": {"vacation_until": None},
    "is fired": {"fired": True},
    "is hired again": {"fired": False},
}
PATCHES: tuple[dict[str, Any], ...] = (
    {"queue": {"max_dialogs_per_operator": 1}},
    {"queue": {"max_dialogs_per_operator": 2}},
    {"queue": {"not_counted": "answered"}},
    {"queue": {"not_counted": "awaiting_client"}},
    {"queue": {"not_counted": "closed"}},
    {"queue": {"distribution": "strictly"}},
    {"queue": {"distribution": "evenly"}},
    {"queue": {"check_availability": True}},
    {"queue": {"check_availability": False}},
    {"queue": {"handover_after": 3600}},
    {"queue": {"handover_after": 43200}},
    {"rating_wait": 0},
    {"rating_wait": 600},
)
# Seconds: past the rating wait (600 s), handover (1 h, 12 h), inactivity (4 h), pinned
# (7 days) and expiry (30 days).
JUMPS = (1, 61, 601, 3601, 14401, 86400, 7 * 86400 + 1, 30 * 86400 + 1)
WORDS = ("Hello", "Are you there?", "1", "0")
ANY = st.integers(0, 50)  # an index into whatever list the step picks from


@dataclass
class Chat:
    """A client of the model: its line, its chat id at the channel and what it sent."""

    line: int
    name: str
    sent: list[tuple[str, str, Filed]] = field(default_factory=list)  # (external id, text, filed)

    @property
    def chat_id(self) -> int:
        return self.sent[0][2].chat_id


class DialogModel(RuleBasedStateMachine):
    def __init__(self, template: Path, folder: Path) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.template, self.folder = template, folder
        self._system: System | None = None
        self.memory = Memory()
        self.trail: list[str] = []
        self.chats: list[Chat] = []
        self.operators: list[int] = []
        self.channels: list[Channel] = []
        self.races = 0
        self.messages = 0
        self.clock = time.monotonic()

    @property
    def system(self) -> System:
        assert self._system is not None
        return self._system

    @initialize(time_skipping=st.booleans())
    def start(self, time_skipping: bool) -> None:
        """Operators and lines, on the test server (time jumps) or the dev server (worker
        restarts; see ``System``)."""
        self._system = System(self.template, self.folder, time_skipping)
        self.run(self.system.start())
        self.operators = self.run(self.system.harness.operators(OPERATORS))
        self.channels = [self.run(self.make_line(spec)) for spec in LINES]
        lines = [channel.line_id for channel in self.channels]
        server = "time-skipping test server" if time_skipping else "dev server"
        self.note(f"{server}; operators {self.operators}, lines {lines}")
        for line in range(len(LINES)):  # a client in each line from the start
            self.new_chat(line)

    async def make_line(self, spec: LineSpec) -> Channel:
        return await self.system.harness.line(
            [self.operators[i] for i in spec.members],
            {**COMMON_SETTINGS, **spec.settings},
            **{**COMMON_QUEUE, **spec.queue},
        )

    def run(self, step: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(step)

    def note(self, line: str) -> None:
        if VERBOSE:  # with the real time since the last note (the check after a step included)
            now = time.monotonic()
            line, self.clock = f"{line} [{now - self.clock:.1f} s]", now
        self.trail.append(f"{len(self.trail) + 1:>3}. {line}")

    def teardown(self) -> None:
        if VERBOSE:
            print("\n".join(["example:", *self.trail]))
        try:
            if self._system is not None:
                self.run(self._system.stop())
        finally:
            self.loop.close()

    def fail(self, problems: list[str]) -> NoReturn:
        raise AssertionError("\n".join([*problems, "after these steps:", *self.trail]))

    # ---- clients ------------------------------------------------------------------------

    def write(self, chat: Chat, words: str) -> Filed:
        self.messages += 1
        external_id = f"m-{self.messages}"
        channel = self.channels[chat.line]
        filed = self.run(self.system.client_writes(channel, chat.name, external_id, words))
        chat.sent.append((external_id, words, filed))
        self.note(f"{chat.name} writes {words!r} ({external_id}): dialog {filed.dialog_id}")
        return filed

    def chat(self, index: int) -> Chat:
        return self.chats[index % len(self.chats)]

    @precondition(lambda self: len(self.chats) < CHATS)
    @rule(line=st.integers(0, len(LINES) - 1))
    def new_chat(self, line: int) -> None:
        chat = Chat(line, f"chat-{len(self.chats) + 1}")
        self.chats.append(chat)
        self.write(chat, "Hello")

    @precondition(lambda self: self.chats)
    @rule(chat=ANY, words=st.sampled_from(WORDS))
    def client_writes(self, chat: int, words: str) -> None:
        self.write(self.chat(chat), words)

    @precondition(lambda self: self.chats)
    @rule(chat=ANY, which=ANY)
    def channel_sends_again(self, chat: int, which: int) -> None:
        """The channel re-sends a message: the first copy's ids come back, nothing is filed."""
        client = self.chat(chat)
        external_id, words, first = client.sent[which % len(client.sent)]
        channel = self.channels[client.line]
        again = self.run(self.system.client_writes(channel, client.name, external_id, words))
        self.note(f"{client.name} sends {external_id} again: {again}")
        if (again.dialog_id, again.message_id, not again.duplicate) != (
            first.dialog_id,
            first.message_id,
            False,
        ):
            self.fail([f"[1 nothing lost] {external_id} filed again as {again}, first {first}"])

    @precondition(lambda self: self.chats)
    @rule(closed_first=st.booleans(), pick=ANY)
    def relay_delivers_again(self, closed_first: bool, pick: int) -> None:
        self.note(self.run(self.system.deliver_again(closed_first, pick)))

    # ---- operators ----------------------------------------------------------------------

    def choose(self, action: str, dialog: Dialog, actor: int, to: int) -> Act:
        """The action's actor: those it makes sense for first (its owner, the operators it
        is offered to, a supervisor), then anyone; and its target operator or line."""
        owner = [dialog.operator_id] if dialog.operator_id else []
        sensible: list[int | None]
        if action in ("accept", "skip", "reply"):
            sensible = [*owner, *dialog.offered_to]
        elif action in ("close", "spam", "transfer_line"):
            sensible = [*owner, None]
        elif action == "intercept":
            sensible = [None]
        else:
            sensible = [*owner]
        candidates = list(dict.fromkeys([*sensible, *self.operators]))
        if action == "intercept":
            candidates = [None]
        lines = [c.line_id for c in self.channels if c.line_id != dialog.line_id]
        return Act(
            action,
            dialog.id,
            dialog.chat_id,
            candidates[actor % len(candidates)],
            to_operator=self.operators[to % len(self.operators)]
            if action in ("transfer", "intercept")
            else None,
            to_line=lines[to % len(lines)] if action == "transfer_line" else None,
        )

    def act_on(self, action: str, chat: int, actor: int, to: int = 0) -> None:
        """An action on a chat's latest dialog (open or not), as the API sends it. Dialogs
        are named by their chat, so that dropping a step while shrinking leaves the others
        acting on the same dialogs."""
        dialog = self.run(self.system.dialog_of(self.chat(chat).chat_id))
        act = self.choose(action, dialog, actor, to)
        ended = " (ended)" if dialog.status in ("closed", "spam") else ""
        self.note(f"{act}{ended}: {self.run(self.system.act(act))}")

    # One rule per action, so that most examples have operators at work (Hypothesis leaves
    # out a random set of rules in each example).

    @rule(chat=ANY, actor=ANY)
    def operator_accepts(self, chat: int, actor: int) -> None:
        self.act_on("accept", chat, actor)

    @rule(chat=ANY, actor=ANY)
    def operator_skips(self, chat: int, actor: int) -> None:
        self.act_on("skip", chat, actor)

    @rule(chat=ANY, actor=ANY)
    def operator_replies(self, chat: int, actor: int) -> None:
        self.act_on("reply", chat, actor)

    @rule(chat=ANY, actor=ANY, spam=st.booleans())
    def operator_closes(self, chat: int, actor: int, spam: bool) -> None:
        self.act_on("spam" if spam else "close", chat, actor)

    @rule(chat=ANY, actor=ANY, unpin=st.booleans())
    def operator_pins(self, chat: int, actor: int, unpin: bool) -> None:
        self.act_on("unpin" if unpin else "pin", chat, actor)

    @rule(chat=ANY, actor=ANY, to=ANY)
    def operator_transfers(self, chat: int, actor: int, to: int) -> None:
        self.act_on("transfer", chat, actor, to)

    @rule(chat=ANY, actor=ANY, to=ANY)
    def operator_transfers_to_a_line(self, chat: int, actor: int, to: int) -> None:
        self.act_on("transfer_line", chat, actor, to)

    @rule(chat=ANY, to=ANY)
    def supervisor_intercepts(self, chat: int, to: int) -> None:
        self.act_on("intercept", chat, 0, to)

    @rule(action=st.sampled_from(ACTIONS), chat=ANY, actor=ANY, to=ANY)
    def operator_acts_on_an_earlier_dialog(
        self, action: str, chat: int, actor: int, to: int
    ) -> None:
        """An action for a chat's first dialog after a later one started (a stale console)."""
        dialog = self.run(self.system.dialog_of(self.chat(chat).chat_id, first=True))
        act = self.choose(action, dialog, actor, to)
        self.note(f"{act} (first of chat): {self.run(self.system.act(act))}")

    @precondition(lambda self: self.races < RACES)
    @rule(action=st.sampled_from(("reply", "close", "transfer")), chat=ANY, to=ANY)
    def client_writes_during_an_action(self, action: str, chat: int, to: int) -> None:
        """An action's database work is slow and the client writes meanwhile: the message
        must not be taken as answered or closed by an action that began before it."""
        self.races += 1
        client = self.chat(chat)
        dialog = self.run(self.system.dialog_of(client.chat_id))
        if dialog.status in ("closed", "spam"):
            return self.note(f"{action} during a client message: dialog {dialog.id} ended")
        act = self.choose(action, dialog, 0, to)  # a sensible actor
        self.messages += 1
        external_id = f"m-{self.messages}"
        race = self.run(self.system.race(act, self.channels[client.line], client.name, external_id))
        self.note(f"{act} while {client.name} writes {external_id}: {race.outcome}")
        self.run(self.system.settle())
        if not self.run(self.system.during(act.chat_id, race.update_id, race.message_id)):
            return
        state = self.run(self.state(act.chat_id))
        if state.dialog_id == act.dialog_id and (
            state.unanswered_since is None
            or state.status in ("operator_replied", "closing", "closed", "spam")
        ):
            self.fail(
                [
                    f"[1 nothing lost] message {race.message_id} reached dialog {act.dialog_id} "
                    f"while its {action} ran (after the update was accepted), yet the dialog "
                    f"treats it as handled: status {state.status}, unanswered_since "
                    f"{state.unanswered_since}"
                ]
            )

    async def state(self, chat_id: int) -> DialogState:
        handle = self.system.client.get_workflow_handle_for(
            DialogWorkflow.run, workflow_id(chat_id)
        )
        result: DialogState = await handle.query(DialogWorkflow.state)
        return result

    # ---- admins, the worker and time ---------------------------------------------------

    @rule(operator=st.integers(0, OPERATORS - 1), change=st.sampled_from(sorted(CHANGES)))
    def operator_changes(self, operator: int, change: str) -> None:
        fields = dict(CHANGES[change])
        if isinstance(until := fields.get("vacation_until"), timedelta):
            fields["vacation_until"] = self.run(self.system.harness.now()) + until
        woken = self.run(self.system.harness.operator_changes(self.operators[operator], **fields))
        self.note(f"operator {self.operators[operator]} {change}: wakes {sorted(woken)}")

    @rule(
        line=st.integers(0, len(LINES) - 1),
        members=st.lists(st.integers(0, OPERATORS - 1), unique=True, max_size=OPERATORS),
    )
    def queue_changes(self, line: int, members: list[int]) -> None:
        ids = [self.operators[i] for i in members]
        line_id = self.channels[line].line_id
        self.run(self.system.harness.set_members(line_id, ids))
        self.note(f"line {line_id} members: {ids}")

    @rule(line=st.integers(0, len(LINES) - 1), patch=st.sampled_from(PATCHES))
    def settings_change(self, line: int, patch: dict[str, Any]) -> None:
        line_id = self.channels[line].line_id
        self.run(self.system.harness.change_settings(line_id, patch))
        self.note(f"line {line_id} settings: {patch}")

    @precondition(lambda self: not self.system.time_skipping)
    @rule(write=st.booleans(), chat=ANY)
    def worker_restarts(self, write: bool, chat: int) -> None:
        self.run(self.system.stop_worker())
        self.note("worker stops")
        if write and self.chats:
            self.write(self.chat(chat), "Anyone there?")
        self.run(self.system.start_worker())
        self.note("worker starts")

    @precondition(lambda self: self.system.time_skipping)
    @rule(seconds=st.sampled_from(JUMPS))
    def time_passes(self, seconds: int) -> None:
        affordable = self.run(self.system.affordable(seconds))
        self.run(self.system.pass_time(affordable))
        asked = f" ({timedelta(seconds=seconds)} asked)" if affordable < seconds else ""
        self.note(f"{timedelta(seconds=affordable)} pass{asked}")

    # ---- after every step ---------------------------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        if self._system is None:
            return
        try:
            self.run(self.system.settle())
        except NotQuiet as stuck:
            self.fail([str(stuck)])
        problems = self.run(check_invariants(self.system.reading, self.system.client, self.memory))
        if problems:
            self.fail(problems)


def migrated(folder: Path) -> Path:
    """A migrated database that each example copies (migrating takes longer than copying)."""
    path = folder / "template.db"
    if not path.exists():
        upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def test_the_invariants_hold_whatever_happens(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("model")
    template = migrated(folder)
    chosen = int(SEED) if SEED else random.randrange(2**32)

    def machine() -> DialogModel:
        return DialogModel(template, folder)

    phases = [Phase.explicit, Phase.reuse, Phase.generate, *([Phase.shrink] if SHRINK else [])]
    try:
        run_state_machine_as_test(
            seed(chosen)(machine),  # type: ignore[arg-type]
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                phases=phases,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
                verbosity=Verbosity.normal,
            ),
        )
    except BaseException as error:
        error.add_note(f"seed {chosen}: run it again with OPENLINES_MODEL_SEED={chosen}")
        raise


# ---- the checker on pictures made by hand: it names what it should, and only that ----------


def picture(*dialogs: Dialog, replied: Iterable[tuple[int, int]] = (), **queue: Any) -> World:
    """A reading of one line (id 1) holding ``dialogs``, nothing on its way, no runs."""
    settings = Queue.model_validate({"max_dialogs_per_operator": 1, **queue})
    return World({1: settings}, list(dialogs), set(replied), [], 0, {})


def dialog(id: int, status: str = "accepted", operator: int | None = 7, **fields: Any) -> Dialog:
    return Dialog(
        id=id,
        line_id=1,
        chat_id=id,
        status=status,
        operator_id=operator,
        offered_to=fields.pop("offered_to", []),
        outside_queue=fields.pop("outside_queue", False),
        **fields,
    )


def test_capacity_counts_a_dialog_answered_by_someone_else_for_its_new_holder() -> None:
    memory = Memory()
    first = dialog(1)
    assert capacity_holds(picture(first, replied=[(1, 7)], not_counted="answered"), memory) == []
    remember(picture(first, replied=[(1, 7)], not_counted="answered"), memory)
    requeued = dialog(1, "queued", None, offered_to=[8])  # operator 8 never wrote in it
    offered = dialog(2, "queued", None, offered_to=[8])
    now = picture(requeued, offered, replied=[(1, 7)], not_counted="answered")

    assert [v.split(":")[0] for v in capacity_holds(now, memory)] == ["[2 capacity] line 1"]


def test_capacity_lets_a_person_give_a_dialog_over_the_limit() -> None:
    memory = Memory()
    remember(picture(dialog(1)), memory)
    transferred = dialog(2, outside_queue=True)  # a transfer or intercept

    assert capacity_holds(picture(dialog(1), transferred), memory) == []


def test_capacity_lets_a_client_make_a_dialog_count_again() -> None:
    memory = Memory()
    remember(
        picture(dialog(1, "operator_replied"), dialog(2), not_counted="awaiting_client"), memory
    )
    wrote_back = dialog(1, "client_followup")

    now = picture(wrote_back, dialog(2), not_counted="awaiting_client")
    assert capacity_holds(now, memory) == []


def test_an_open_dialog_needs_an_ending_deadline_and_a_closed_one_stays_closed() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    state = DialogState(
        dialog_id=1, chat_id=1, line_id=1, channel_type="api", status="queued", deadlines={}
    )
    handover = state.model_copy(update={"deadlines": {"handover": at}})
    world = picture(dialog(1, "queued", None))
    world.runs = {1: Run("run", handover)}
    assert [v.split(" ")[0] for v in open_dialogs_have_an_ending_deadline(world)] == ["[8"]

    memory = Memory()
    remember(picture(dialog(1, "closed", closed_at=at, close_reason="operator")), memory)
    revived = picture(dialog(1, "queued", None))
    revived.runs = {1: Run("run", state.model_copy(update={"deadlines": {"expiry": at}}))}
    assert len(ended_is_ended(revived, memory)) == 1
    assert open_dialogs_have_an_ending_deadline(revived) == []
