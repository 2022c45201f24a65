"""``python -m bench.chaos [--short]``: inbound load while the parts of openlines crash, then
checks that nothing was lost, doubled, left behind or answered wrongly.

It starts Temporal (on a state file), the worker and the API as separate processes on a new
PostgreSQL database of the local server (``openlines migrate`` first; dropped at the end),
sets up lines, operators and an ``api`` channel through the HTTP API, and posts client
messages at a steady rate, each retried with the same external id until it gets a 2xx.
Meanwhile, on a schedule: SIGKILL the worker twice (started again at once), SIGKILL Temporal
(started again on its file after 5 s) and the API (started again at once), restart
PostgreSQL in immediate mode, and hold the worker down for 20 s while an operator accepts a
dialog. Dialogs offered before the first fault carry handover timers due after the last.
Part of the load goes, signed, through a ``webhook`` channel whose receiver the run serves
itself (``bench.chaos_receiver``): one message a chat, so each starts a dialog whose welcome
text is delivered to it across the faults (every 7th POST refused with a 503). Then, all
parts up, the outbox drained and every message to a client sent, it checks
(``bench.chaos_checks``), prints a table and exits 1 if a check failed, 2 if it could not
run. ``--short`` is the same with fewer messages and a tighter schedule (about 2 minutes;
``tests/test_chaos.py`` runs it); the full run takes about 5. It restarts the whole
PostgreSQL cluster: other users of that server see it go away.
"""

import argparse
import asyncio
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import chaos_checks, chaos_report
from bench.chaos_checks import Check, Db, Probe
from bench.chaos_load import ActionAnswer, InboundLoad, StatusLog, act
from bench.chaos_receiver import ChaosReceiver, serve_receiver
from bench.chaos_report import FaultResult
from bench.chaos_stack import ChaosSetupError, ChaosStack, Cluster, find_cluster, running
from bench.client import Api, Line
from bench.database import postgres_database
from bench.offers import QUIET_HANDOVER_S
from bench.runner import Progress
from core.background import in_background

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
OFFER_WAIT_S = 60.0  # set-up: how long a new dialog may take to be offered
ACTION_DELAY_S = 1.0  # into the worker hold, the operator acts
ACTION_WAIT_S = 60.0  # how long the client waits for the action's answer at all
OPERATORS = 3

Schedule = tuple[tuple[float, str], ...]  # (seconds into the load, fault)
SHORT_SCHEDULE: Schedule = (
    (3, "worker"),
    (12, "hold"),
    (38, "temporal"),
    (47, "worker"),
    (55, "api"),
    (63, "postgres"),
)
FULL_SCHEDULE: Schedule = (
    (10, "worker"),
    (40, "hold"),
    (90, "temporal"),
    (120, "worker"),
    (150, "api"),
    (180, "postgres"),
)
LABELS = {
    "worker": "kill -9 worker #{number}",
    "hold": "worker down {plan.hold_s:g} s",
    "temporal": "kill -9 Temporal, {plan.temporal_down_s:g} s down",
    "api": "kill -9 API",
    "postgres": "restart PostgreSQL",
}


@dataclass(frozen=True)
class Plan:
    """Rates, sizes and the fault schedule of one run."""

    short: bool
    rate: float  # messages a second
    duration_s: float
    chats: int
    schedule: Schedule
    settle_s: float  # after the load: at most this long for everything to catch up
    postgres_url: str
    keep: bool
    webhook_rate: float = 0.5  # messages a second on the webhook line, one a chat
    hold_s: float = 20.0
    temporal_down_s: float = 5.0  # its restart alone takes under a second: let it be missed
    probes: int = 3
    attempt_timeout_s: float = 15.0  # an inbound POST without an answer by then is retried
    action_deadline_s: float = 15.0  # the action's 503 must come within this
    handover_lag_s: float = 10.0  # a probe's move may come this late after its deadline
    quiet_after_s: float = 25.0  # probes fall due this long after the last fault begins

    @property
    def probe_handover_s(self) -> int:
        """The probes' ``handover_after``: their timers run across every fault."""
        return max(60, math.ceil(max(at for at, _ in self.schedule) + self.quiet_after_s))


@dataclass
class ChaosRun:
    """One run's state, from set-up to checks."""

    plan: Plan
    stack: ChaosStack
    api: Api
    db: Db
    say: Progress
    receiver: ChaosReceiver
    statuses: StatusLog = field(default_factory=StatusLog)
    probes: list[Probe] = field(default_factory=list)
    faults: list[FaultResult] = field(default_factory=list)
    action_dialog: int = 0
    action_operator: int = 0
    action_before: dict[str, Any] = field(default_factory=dict)
    action_task: asyncio.Task[ActionAnswer] | None = None

    async def setup(self) -> tuple[Line, Line, Line, Line]:
        """Operators, the load's lines (``api`` and ``webhook``), the probes' and the action's;
        their dialogs offered."""
        self.statuses.attach(self.api)
        operators = await self.api.operators(OPERATORS)
        main = await self.api.line("chaos load", operators)
        webhook = await self.api.webhook_line("chaos webhook", operators, self.receiver.url)
        self.receiver.secret = webhook.secret
        timers = await self.api.line(
            "chaos timers",
            operators[:2],
            queue={"distribution": "strictly", "handover_after": self.plan.probe_handover_s},
        )
        action = await self.api.line(
            "chaos action",
            operators[2:],
            queue={"distribution": "strictly", "handover_after": QUIET_HANDOVER_S},
        )
        for number in range(self.plan.probes):
            filed = await self.api.inbound(timers, f"probe-{number}", "m-0", "probe")
            detail = await self._offered(filed.dialog_id)
            deadline = datetime.fromisoformat(detail["deadlines"]["handover"]).timestamp()
            self.probes.append(Probe(filed.dialog_id, detail["offered_to"], deadline))
        filed = await self.api.inbound(action, "action", "m-0", "please accept")
        await self._offered(filed.dialog_id)
        self.action_dialog, self.action_operator = filed.dialog_id, operators[2]
        return main, webhook, timers, action

    async def _offered(self, dialog_id: int) -> dict[str, Any]:
        deadline = time.monotonic() + OFFER_WAIT_S
        while time.monotonic() < deadline:
            detail = await self.api.dialog(dialog_id)
            if detail["offered_to"] and "handover" in detail["deadlines"]:
                return detail
            await asyncio.sleep(0.2)
        raise ChaosSetupError(f"dialog {dialog_id} was not offered within {OFFER_WAIT_S:g} s")

    async def inject(self, started: float) -> float:
        """Every fault at its time, each until the part serves again; ``time.time()`` when
        the last part was back."""
        for at, kind in self.plan.schedule:
            delay = started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            number = sum(1 for _, done in self.plan.schedule[: len(self.faults)] if done == kind)
            label = LABELS[kind].format(number=number + 1, plan=self.plan)
            self.say(f"fault: {label}")
            began = time.monotonic()
            if kind == "postgres":
                await self.stack.restart_postgres()
            else:
                name = "worker" if kind == "hold" else kind
                if kind == "hold":
                    rows = await self.db.dialogs([self.action_dialog])
                    self.action_before = rows[self.action_dialog]
                self.stack.kill(name)
                if kind == "hold":
                    await self._act_while_down(began)
                elif kind == "temporal":
                    await asyncio.sleep(self.plan.temporal_down_s)
                await self.stack.restart(name)
            self.faults.append(FaultResult(label, began - started, time.monotonic() - began))
            self.say(f"  back after {self.faults[-1].down_s:.1f} s")
        return time.time()

    async def _act_while_down(self, began: float) -> None:
        """The operator accepts the offered dialog; the worker stays down ``hold_s``."""
        await asyncio.sleep(ACTION_DELAY_S)
        body = {"operator_id": self.action_operator}
        self.action_task = asyncio.create_task(
            act(self.api, self.statuses, self.action_dialog, "accept", body, ACTION_WAIT_S)
        )
        await asyncio.sleep(max(0.0, began + self.plan.hold_s - time.monotonic()))

    async def run(self) -> tuple[list[Check], chaos_report.Numbers]:
        main, webhook, timers, action = await self.setup()
        line_ids = [main.id, webhook.id, timers.id, action.id]
        plan = self.plan
        load = InboundLoad(
            self.api, main, self.statuses, plan.rate, plan.duration_s, plan.chats,
            plan.attempt_timeout_s,
        )  # fmt: skip
        hooked = InboundLoad(
            self.api, webhook, self.statuses, plan.webhook_rate, plan.duration_s,
            round(plan.webhook_rate * plan.duration_s), plan.attempt_timeout_s, prefix="hook",
        )  # fmt: skip
        self.say(
            f"load: {load.count} messages over {plan.chats} chats at {plan.rate:g}/s, "
            f"{hooked.count} signed on the webhook channel at {plan.webhook_rate:g}/s "
            f"(a chat each); probes due in {plan.probe_handover_s} s"
        )
        started = time.monotonic() + 0.5
        async with in_background(chaos_checks.watch_probes(self.db, self.probes)):
            sending = asyncio.gather(load.run(started), hooked.run(started))
            faults_over = await self.inject(started)
            await sending
            self.say("load sent; waiting for every message to be taken")
            never_taken = await load.finish(plan.settle_s)
            hooked_never_taken = await hooked.finish(plan.settle_s)
            answer = await self.action_task if self.action_task else None
            latest = max((p.deadline for p in self.probes), default=0.0)
            within = max(plan.settle_s, latest + plan.handover_lag_s - time.time() + 5)
            self.say("settling: outbox, deliveries, offers, handovers")
            settled_s = await chaos_checks.settle(
                self.db, line_ids, self.probes, within, plan.handover_lag_s, self.say
            )
        after = (await self.db.dialogs([self.action_dialog]))[self.action_dialog]
        checks = [
            await chaos_checks.message_check(self.db, load),
            Check(
                "every message taken (2xx) in the end",
                never_taken == 0,
                f"{load.count - never_taken} of {load.count}",
            ),
            await chaos_checks.message_check(self.db, hooked, " (webhook)"),
            Check(
                "every signed message taken (2xx) in the end",
                hooked_never_taken == 0,
                f"{hooked.count - hooked_never_taken} of {hooked.count}",
            ),
            *await chaos_checks.state_checks(self.db, line_ids),
            *await chaos_checks.delivery_checks(self.db, webhook.channel_id, self.receiver),
            chaos_checks.probe_check(self.probes, faults_over, plan.handover_lag_s),
            *chaos_checks.action_checks(answer, self.action_before, after, plan.action_deadline_s),
            *chaos_checks.status_checks(self.statuses),
        ]
        numbers = chaos_report.Numbers(
            load=load,
            statuses=self.statuses,
            hooked=hooked,
            receiver=self.receiver,
            faults=self.faults,
            action=answer,
            settled_s=settled_s,
        )
        return checks, numbers


async def run(plan: Plan, cluster: Cluster, say: Progress) -> int:
    """Start everything in a temporary folder and database, run, check, print; the exit
    code (1 when a check failed)."""
    data_dir = Path(tempfile.mkdtemp(prefix="openlines-chaos-"))
    keep = plan.keep
    try:
        async with postgres_database(plan.postgres_url, prefix="chaos") as database:
            say(f"starting Temporal, worker and API on PostgreSQL in {data_dir}")
            async with (
                serve_receiver() as receiver,
                running(data_dir, database, cluster) as stack,
            ):
                api = Api(stack.api_url, stack.admin_key)
                try:
                    chaos = ChaosRun(plan, stack, api, Db(database.url), say, receiver)
                    checks, numbers = await chaos.run()
                finally:
                    await api.aclose()
        numbers.elapsed_s = say.elapsed()
        chaos_report.print_report(plan.short, checks, numbers)
        failed = not all(check.ok for check in checks)
        keep = keep or failed
        return 1 if failed else 0
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"data folder (logs) kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def run_until_stopped(plan: Plan, cluster: Cluster, say: Progress) -> int:
    """``run``, cancelled by SIGTERM as by Ctrl-C: every process stops, the database goes."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await run(plan, cluster, say)


def plan_from(args: argparse.Namespace) -> Plan:
    if args.short:
        return Plan(True, 4, 70, 35, SHORT_SCHEDULE, 60, args.postgres, args.keep)
    return Plan(False, 5, 240, 80, FULL_SCHEDULE, 120, args.postgres, args.keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--short", action="store_true", help="fewer messages, tighter schedule")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("OPENLINES_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="the local PostgreSQL server to run on and restart (default %(default)s)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs)")
    plan = plan_from(parser.parse_args(argv))
    say = Progress()
    try:
        cluster = find_cluster(plan.postgres_url)
        return asyncio.run(run_until_stopped(plan, cluster, say))
    except ChaosSetupError as error:
        print(f"chaos: {error}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"chaos: PostgreSQL at {plan.postgres_url} unreachable: {error}", file=sys.stderr)
        return 2
    except (asyncio.CancelledError, KeyboardInterrupt):
        say("stopped; every process it started has been stopped too")
        return 130


if __name__ == "__main__":
    sys.exit(main())
