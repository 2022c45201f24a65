"""Item 2: operator action round trips (accept, reply, close), each a Temporal update behind
the API, taken by the admin key acting for the operator the dialog is offered to."""

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from bench.client import Api, ApiCallError
from bench.offers import QUIET_HANDOVER_S
from bench.stats import summary_ms

ACTIONS = ("accept", "reply", "close")


async def wait_detail(
    api: Api, dialog_id: int, ready: Callable[[dict[str, Any]], bool], within: float = 30
) -> dict[str, Any]:
    """``GET /v1/dialogs/{id}`` (the workflow's own view) until ``ready``; the last answer."""
    deadline = time.monotonic() + within
    while True:
        detail = await api.dialog(dialog_id)
        if ready(detail) or time.monotonic() > deadline:
            return detail
        await asyncio.sleep(0.01)


async def measure_actions(
    api: Api, operator_ids: list[int], dialogs: int, concurrency: int
) -> dict[str, Any]:
    """``dialogs`` dialogs, ``concurrency`` at a time: each is accepted, answered and closed
    once the workflow shows its offer (an operator console accepts what it has been shown)."""
    line = await api.line("bench actions", operator_ids, queue={"handover_after": QUIET_HANDOVER_S})
    times: dict[str, list[float]] = {action: [] for action in ACTIONS}
    refused: Counter[str] = Counter()
    seqs = iter(range(dialogs))

    async def one(seq: int) -> None:
        filed = await api.inbound(line, f"actions-{seq}", "m-1", "Hello")
        detail = await wait_detail(api, filed.dialog_id, lambda d: bool(d["offered_to"]))
        if not detail["offered_to"]:
            refused["never offered"] += 1
            return
        operator = {"operator_id": detail["offered_to"][0]}
        steps = (
            ("accept", "accept", operator),
            ("reply", "messages", {**operator, "text": "Hello, how can I help?"}),
            ("close", "close", operator),
        )
        for name, path, body in steps:
            try:
                times[name].append(await api.act(filed.dialog_id, path, body))
            except (httpx.HTTPError, ApiCallError):
                refused[name] += 1
                return

    async def worker() -> None:
        for seq in seqs:
            await one(seq)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result: dict[str, Any] = {
        "dialogs": dialogs,
        "concurrency": concurrency,
        **{action: summary_ms(times[action]) for action in ACTIONS},
        "refused": dict(refused),
    }
    return result
