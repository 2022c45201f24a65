"""The benchmark's command-line options and the plan they make; argparse only, so importing
this from ``cli.py`` keeps ``openlines`` quick to start."""

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Plan:
    """Every size and rate one run uses; ``--quick`` scales the full run down."""

    quick: bool
    operators: int
    fixed_rate: float  # item 1: new dialogs per second
    fixed_duration: float  # seconds
    warmup_s: float  # an unreported load step before the measured ones
    step_start: float  # max-rate search: first rate, then x step_factor until it fails
    step_factor: float
    step_duration: float
    step_refinements: int  # bisections between the last rate that held and the first that failed
    step_max_rate: float
    drain_s: float  # how long a step waits for its last dialogs after sending stops
    # then, at most this long for a failed step's backlog to clear: long enough for item 1's
    # 3,000 dialogs, or the next step starts amid them and fails for their sake
    settle_s: float
    timer_dialogs: int  # items 4 and 6: dialogs open and waiting
    timer_create_rate: float
    timer_grace_s: float  # a move later than this after its deadline counts as missed
    action_dialogs: int  # item 2
    action_concurrency: int
    json_path: Path | None
    keep: bool


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``python -m bench`` and ``openlines bench``."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="everything scaled down (about 90 s; the 60 s handover minimum dominates)",
    )
    parser.add_argument("--rate", type=float, help="item 1 arrival rate, dialogs/s (default 50)")
    parser.add_argument("--duration", type=float, help="item 1 duration, seconds (default 60)")
    parser.add_argument(
        "--dialogs", type=int, help="open dialogs for the timer and memory items (default 10000)"
    )
    parser.add_argument(
        "--operators", type=_at_least_two, help="operators in each line (default 10, at least 2)"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data folder (logs) afterwards"
    )


def _at_least_two(value: str) -> int:
    """Handovers and transfers need a second operator to move to."""
    number = int(value)
    if number < 2:
        raise argparse.ArgumentTypeError("at least 2 operators are needed")
    return number


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan for the parsed flags: quick or full sizes, explicit flags winning."""
    quick = bool(args.quick)

    def pick(given: float | None, quick_value: float, full_value: float) -> float:
        if given is not None:
            return given
        return quick_value if quick else full_value

    return Plan(
        quick=quick,
        operators=int(pick(args.operators, 10, 10)),
        fixed_rate=pick(args.rate, 10, 50),
        fixed_duration=pick(args.duration, 5, 60),
        warmup_s=0 if quick else 5,
        step_start=5 if quick else 50,
        step_factor=2,
        step_duration=2 if quick else 15,
        step_refinements=0 if quick else 2,
        step_max_rate=3200,
        drain_s=1.5 if quick else 10,
        settle_s=2 if quick else 900,
        timer_dialogs=int(pick(args.dialogs, 100, 10_000)),
        timer_create_rate=100,
        timer_grace_s=20 if quick else 120,
        action_dialogs=10 if quick else 200,
        action_concurrency=1 if quick else 4,
        json_path=args.json,
        keep=bool(args.keep),
    )
