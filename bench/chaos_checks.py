"""What the chaos run checks at the end, read straight from the run's PostgreSQL database
(a fresh connection each time: the server restarts under the run), and the handover probes
followed while it runs.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from bench.chaos_load import ActionAnswer, InboundLoad, StatusLog
from bench.chaos_receiver import ChaosReceiver
from bench.database import libpq_url

POLL_S = 1.0
DEADLINE_SLACK_S = 0.5  # a move this much before its deadline is still on time (clock reads)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


class Db:
    """Reads of the run's database, each on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = libpq_url(url)

    async def rows(self, query: str, *params: Any) -> list[dict[str, Any]]:
        async with await psycopg.AsyncConnection.connect(
            self.url, connect_timeout=5, row_factory=dict_row
        ) as connection:
            cursor = await connection.execute(query, params)
            return await cursor.fetchall()

    async def undelivered(self) -> int:
        """Outbox rows not yet delivered to their workflow."""
        rows = await self.rows("SELECT count(*) AS n FROM outbox WHERE delivered_at IS NULL")
        return int(rows[0]["n"])

    async def pending(self) -> int:
        """Messages to clients still owed to their channel (``delivery_status`` pending)."""
        rows = await self.rows(
            "SELECT count(*) AS n FROM messages WHERE delivery_status = 'pending'"
        )
        return int(rows[0]["n"])

    async def outbound(self, channel_id: int) -> list[dict[str, Any]]:
        """Every message to the client (any author but the client) of the channel's chats."""
        return await self.rows(
            "SELECT m.id, m.author, m.delivery_status, m.delivery_error"
            " FROM messages m JOIN chats c ON c.id = m.chat_id"
            " WHERE c.channel_id = %s AND m.author <> 'client' ORDER BY m.id",
            channel_id,
        )

    async def unoffered(self, line_ids: list[int]) -> list[int]:
        """Open dialogs of the lines with neither an offer nor an owner."""
        rows = await self.rows(
            "SELECT id FROM dialogs WHERE line_id = ANY(%s)"
            " AND status NOT IN ('closed', 'spam') AND operator_id IS NULL"
            " AND CASE WHEN json_typeof(offered_to::json) = 'array'"
            " THEN json_array_length(offered_to::json) ELSE 0 END = 0"
            " ORDER BY id",
            line_ids,
        )
        return [int(row["id"]) for row in rows]

    async def dialogs(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        rows = await self.rows(
            "SELECT id, status, operator_id, offered_to, offered_at FROM dialogs"
            " WHERE id = ANY(%s)",
            ids,
        )
        return {int(row["id"]): row for row in rows}

    async def client_messages(self, channel_id: int) -> list[dict[str, Any]]:
        """Every client message of the channel's chats, with its chat's and dialog's ids."""
        return await self.rows(
            "SELECT m.id, m.chat_id, m.external_id, c.external_id AS chat_external_id,"
            " d.id AS dialog_id, d.chat_id AS dialog_chat_id"
            " FROM messages m JOIN chats c ON c.id = m.chat_id"
            " LEFT JOIN dialogs d ON d.id = m.dialog_id"
            " WHERE c.channel_id = %s AND m.author = 'client'",
            channel_id,
        )


@dataclass
class Probe:
    """A dialog offered before the faults whose handover deadline falls after them."""

    dialog_id: int
    offered_to: list[int]
    deadline: float  # time.time()
    moved_at: float | None = None  # the new offer's own time (offered_at)
    moved_to: list[int] | None = None


async def watch_probes(db: Db, probes: list[Probe]) -> None:
    """Until cancelled: note each probe's first new offer (a later one would hide it)."""
    while True:
        waiting = [probe for probe in probes if probe.moved_at is None]
        try:
            rows = await db.dialogs([probe.dialog_id for probe in waiting]) if waiting else {}
        except psycopg.OperationalError:
            rows = {}  # PostgreSQL is restarting
        for probe in waiting:
            row = rows.get(probe.dialog_id)
            if row and row["offered_to"] and row["offered_to"] != probe.offered_to:
                offered_at: datetime | None = row["offered_at"]
                probe.moved_to = list(row["offered_to"])
                probe.moved_at = offered_at.timestamp() if offered_at else time.time()
        await asyncio.sleep(POLL_S)


async def settle(
    db: Db,
    line_ids: list[int],
    probes: list[Probe],
    within_s: float,
    grace_s: float,
    say: Callable[[str], None] | None = None,
) -> float:
    """Wait until the outbox is drained, no message is left to send, every dialog is offered
    and every probe moved (or its deadline plus ``grace_s`` passed), at most ``within_s``;
    the seconds it took. ``say`` hears what is still awaited whenever that changes."""
    started = time.monotonic()
    told = ""
    while time.monotonic() - started < within_s:
        try:
            undelivered, pending = await db.undelivered(), await db.pending()
            unoffered = len(await db.unoffered(line_ids))
        except psycopg.OperationalError:
            undelivered = pending = unoffered = -1
        late = time.time() - grace_s
        unmoved = sum(1 for p in probes if p.moved_at is None and p.deadline >= late)
        waits = {
            "outbox rows": undelivered,
            "messages pending": pending,
            "dialogs unoffered": unoffered,
            "probes unmoved": unmoved,
        }
        if not any(waits.values()):
            break
        awaited = ", ".join(
            f"{n} {what}" if n >= 0 else f"? {what}" for what, n in waits.items() if n
        )
        if say is not None and awaited != told:
            say(f"  awaiting {awaited}")
            told = awaited
        await asyncio.sleep(POLL_S)
    return time.monotonic() - started


async def message_check(db: Db, load: InboundLoad, of: str = "") -> Check:
    """Every message that got a 2xx is stored once, with the ids it was answered with, in a
    dialog of its own chat; nothing was called a duplicate on its first try."""
    rows = await db.client_messages(load.line.channel_id)
    copies = Counter((row["chat_external_id"], row["external_id"]) for row in rows)
    by_key = {(row["chat_external_id"], row["external_id"]): row for row in rows}
    problems: list[str] = []
    for key, taken in load.taken.items():
        row = by_key.get(key)
        name = "/".join(key)
        if row is None:
            problems.append(f"{name} missing")
        elif copies[key] != 1:
            problems.append(f"{name} stored {copies[key]} times")
        elif (row["id"], row["chat_id"], row["dialog_id"]) != (
            taken.message_id,
            taken.chat_id,
            taken.dialog_id,
        ):
            stored = f"message {row['id']} of dialog {row['dialog_id']}"
            answered = f"message {taken.message_id} of dialog {taken.dialog_id}"
            problems.append(f"{name} stored as {stored}, answered as {answered}")
        elif row["dialog_id"] is None or row["dialog_chat_id"] != row["chat_id"]:
            problems.append(f"{name} filed in dialog {row['dialog_id']} of another chat")
    problems += [f"{name} called a duplicate at its first try" for name in load.false_duplicates]
    extra = sum(1 for key in copies if key not in load.taken)
    detail = f"{len(load.taken) - len(problems)} of {len(load.taken)} taken are stored once"
    if extra:
        detail += f"; {extra} stored with no 2xx seen"
    if problems:
        detail += ": " + "; ".join(problems[:5])
    return Check(f"every 2xx message stored once, in its chat{of}", not problems, detail)


async def state_checks(db: Db, line_ids: list[int]) -> list[Check]:
    undelivered = await db.undelivered()
    unoffered = await db.unoffered(line_ids)
    return [
        Check("outbox drained", undelivered == 0, f"{undelivered} rows undelivered"),
        Check(
            "every dialog offered, owned or closed",
            not unoffered,
            f"{len(unoffered)} without: {unoffered[:10]}" if unoffered else "all",
        ),
    ]


def probe_check(probes: list[Probe], faults_over: float, max_lag_s: float) -> Check:
    """Each probe's offer, made before the faults, moved on at its deadline (not before;
    within ``max_lag_s``); the detail says how long after the last part was back
    (``faults_over``, ``time.time()``) the first fell due."""
    problems: list[str] = []
    lags: list[float] = []
    for probe in probes:
        if probe.moved_at is None:
            problems.append(f"dialog {probe.dialog_id} never moved on")
            continue
        lag = probe.moved_at - probe.deadline
        lags.append(lag)
        if lag < -DEADLINE_SLACK_S or lag > max_lag_s:
            problems.append(f"dialog {probe.dialog_id} moved {lag:+.1f} s from its deadline")
    due_after = min((p.deadline for p in probes), default=0.0) - faults_over
    detail = f"{len(lags)} of {len(probes)} moved; lag max {max(lags, default=0):.2f} s"
    detail += f"; first due {due_after:.0f} s after the last part was back"
    if problems:
        detail += ": " + "; ".join(problems)
    return Check("handover timers fire after the faults", not problems, detail)


def action_checks(
    answer: ActionAnswer | None,
    before: dict[str, Any],
    after: dict[str, Any],
    deadline_s: float,
) -> list[Check]:
    """The action taken while no worker ran: a 503 (problem details, ``Retry-After``) in
    time, and the dialog as it was once the worker is back."""
    if answer is None:
        answered = Check("action during worker outage: 503 in time", False, "never sent")
    else:
        ok = (
            answer.outcome == "503"
            and answer.elapsed <= deadline_s
            and answer.retry_after is not None
            and (answer.content_type or "").startswith("application/problem+json")
        )
        detail = (
            f"{answer.outcome} after {answer.elapsed:.1f} s (limit {deadline_s:g} s), "
            f"Retry-After {answer.retry_after}, {answer.content_type}"
        )
        answered = Check("action during worker outage: 503 in time", ok, detail)
    fields = ("status", "operator_id")
    same = all(before.get(name) == after.get(name) for name in fields)
    was = ", ".join(f"{name} {before.get(name)}" for name in fields)
    now = ", ".join(f"{name} {after.get(name)}" for name in fields)
    applied = Check(
        "action during worker outage: never applied",
        same,
        f"unchanged: {now}" if same else f"was {was}; after the worker returned: {now}",
    )
    return [answered, applied]


def status_checks(statuses: StatusLog) -> list[Check]:
    """No 500 (nor any 5xx but 503); every 503 carried problem details and Retry-After."""
    errors = {code: n for code, n in statuses.counts.items() if code.startswith("5")}
    bad = {code: n for code, n in errors.items() if code != "503"}
    seen = ", ".join(f"{code} x{n}" for code, n in sorted(errors.items())) or "none"
    return [
        Check("no HTTP 500 answered", not bad, f"5xx seen: {seen}"),
        Check(
            "every 503 is problem+json with Retry-After",
            not statuses.bad_503,
            f"{len(statuses.bad_503)} not: {statuses.bad_503[:3]}"
            if statuses.bad_503
            else f"{statuses.counts.get('503', 0)} seen, all well-formed",
        ),
    ]


async def delivery_checks(db: Db, channel_id: int, receiver: ChaosReceiver) -> list[Check]:
    """The webhook channel's messages to clients: every one ``sent`` (none ``pending`` or
    ``failed``), the receiver took each (a 200) at least once, by ``X-Openlines-Delivery``,
    and got nothing else; every request it got was signed with the channel's secret."""
    rows = await db.outbound(channel_id)
    statuses = Counter(str(row["delivery_status"]) for row in rows)
    unsent = [row for row in rows if row["delivery_status"] != "sent"]
    detail = f"{statuses['sent']} of {len(rows)} sent"
    if unsent:
        others = ", ".join(f"{name} x{n}" for name, n in sorted(statuses.items()) if name != "sent")
        examples = "; ".join(
            f"message {row['id']} {row['delivery_status']}: {row['delivery_error']}"
            for row in unsent[:3]
        )
        detail += f"; {others}: {examples}"
    elif not rows:
        detail = "no message to a client at all: nothing was checked"
    sent = Check("every message to a webhook client sent", bool(rows) and not unsent, detail)

    ids = {int(row["id"]) for row in rows}
    missing = sorted(ids - set(receiver.taken))
    unknown = sorted(set(receiver.taken) - ids)
    detail = (
        f"{len(ids) - len(missing)} of {len(ids)} received; {receiver.requests} POSTs, "
        f"{receiver.duplicates} again after a 200, {receiver.refused} answered 503"
    )
    if missing:
        detail += f"; never received: {missing[:10]}"
    if unknown:
        detail += f"; not messages of the channel: {unknown[:10]}"
    received = Check(
        "receiver got every one (by delivery id)", bool(ids) and not missing and not unknown, detail
    )

    detail = f"{receiver.verified} of {receiver.requests} verified"
    if receiver.bad:
        detail += ": " + "; ".join(receiver.bad[:3])
    signed = Check(
        "every delivery signed with the channel secret",
        receiver.requests > 0 and not receiver.bad,
        detail,
    )
    return [sent, received, signed]
