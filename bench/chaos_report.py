"""The chaos run's printout: the checks, then the numbers behind them and each fault."""

from collections import Counter
from dataclasses import dataclass

from bench.chaos_checks import Check
from bench.chaos_load import DROPPED, ActionAnswer, InboundLoad, StatusLog
from bench.chaos_receiver import ChaosReceiver
from bench.report import print_rows

# A fault's window: from it until this long after the part was back (or the next fault).
WINDOW_AFTER_S = 2.0


@dataclass(frozen=True)
class FaultResult:
    """One fault as it happened."""

    label: str
    at: float  # seconds into the load
    down_s: float  # from the fault until the part served again


@dataclass
class Numbers:
    """What the run counted, for the printout."""

    load: InboundLoad
    statuses: StatusLog
    faults: list[FaultResult]
    action: ActionAnswer | None
    settled_s: float
    hooked: InboundLoad | None = None  # the signed load on the webhook channel
    receiver: ChaosReceiver | None = None  # where that channel delivered
    elapsed_s: float = 0.0


def counted(counts: Counter[str]) -> str:
    """``202 x280, ConnectError x3``: numbers first, then by name."""
    order = sorted(counts, key=lambda name: (not name.isdigit(), name))
    return ", ".join(f"{name} x{counts[name]}" for name in order) or "none"


def print_report(short: bool, checks: list[Check], numbers: Numbers) -> None:
    """The checks, the counts behind them and a row per fault, on stdout."""
    load = numbers.load
    hooked = numbers.hooked
    kind = "SHORT run" if short else "full run"
    signed = f" + {hooked.count} signed (webhook) at {hooked.rate:g}/s" if hooked else ""
    print(
        f"\nopenlines chaos run ({kind}): {load.count} messages over {load.chats} chats at "
        f"{load.rate:g}/s{signed}, {len(numbers.faults)} faults, {numbers.elapsed_s:g} s\n"
    )
    print_rows(
        [
            ("check", "result", "detail"),
            *((c.name, "ok" if c.ok else "FAIL", c.detail) for c in checks),
        ]
    )

    outcomes = Counter(attempt.outcome for attempt in load.attempts)
    taken = len(load.taken)
    duplicates = sum(1 for item in load.taken.values() if item.duplicate)
    retries = sum(1 for attempt in load.attempts if attempt.retry)
    dropped = sum(1 for attempt in load.attempts if attempt.outcome == DROPPED)
    action = numbers.action
    print(
        f"\nmessages: {load.count} sent, {taken} taken (2xx), {load.count - taken} never taken\n"
        f"POST attempts: {len(load.attempts)}, retries {retries}, answers the client did not "
        f"wait for {dropped}, answered as duplicates {duplicates} "
        f"(at a first try: {len(load.false_duplicates)})\n"
        f"inbound answers: {counted(outcomes)}\n"
        f"every answer of the run: {counted(numbers.statuses.counts)}\n"
        "operator action while the worker was down: "
        + (f"{action.outcome} after {action.elapsed:.1f} s" if action else "not sent")
        + f"\nsettled {numbers.settled_s:.1f} s after the load\n"
    )
    if hooked is not None:
        signed_taken = len(hooked.taken)
        print(
            f"webhook channel, inbound: {hooked.count} sent signed, {signed_taken} taken; "
            f"answers: {counted(Counter(attempt.outcome for attempt in hooked.attempts))}"
        )
    receiver = numbers.receiver
    if receiver is not None:
        print(
            f"webhook channel, outbound: {len(receiver.taken)} messages taken by the receiver, "
            f"{receiver.requests} POSTs ({receiver.refused} answered 503 on purpose, "
            f"{receiver.duplicates} taken again, {len(receiver.bad)} not verified)\n"
        )
    rows = [("fault", "at s", "back after s", "inbound answers from it until 2 s after")]
    for index, fault in enumerate(numbers.faults):
        end = fault.at + fault.down_s + WINDOW_AFTER_S
        if index + 1 < len(numbers.faults):
            end = min(end, numbers.faults[index + 1].at)  # up to the next fault at most
        window = Counter(a.outcome for a in load.attempts if fault.at <= a.started < end)
        rows.append((fault.label, f"{fault.at:.1f}", f"{fault.down_s:.1f}", counted(window)))
    print_rows(rows)
