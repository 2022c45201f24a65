"""Item 5: Temporal history size of a scripted typical dialog, with and without a transfer.

The script: the client writes, the dialog is accepted, then ten rounds of operator reply and
client message (ten client messages and ten replies in all), a close, and the client's ``1``
(a rating reply). The line has ``rating.close_on_rating`` so that a rating ends the run at once
and its history is final. Counted: the events of the dialog's run (``workflow.run_id``), and
of every run of the chat's workflow id, since a message after a close may start another run.
"""

import asyncio
import time
from collections import Counter
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from bench.actions import wait_detail
from bench.client import Api, ApiCallError, Line
from bench.offers import QUIET_HANDOVER_S

ROUNDS = 10
TRANSFER_AT = 6  # the round whose reply comes from the second operator


async def measure_history(api: Api, client: Client, operator_ids: list[int]) -> dict[str, Any]:
    """Both scripted dialogs, on a line of their own."""
    line = await api.line(
        "bench history",
        operator_ids,
        queue={"handover_after": QUIET_HANDOVER_S},
        rating={"close_on_rating": True},
    )
    return {
        "typical": await scripted_dialog(api, client, line, operator_ids, "typical", False),
        "with_transfer": await scripted_dialog(api, client, line, operator_ids, "transfer", True),
    }


async def scripted_dialog(
    api: Api, client: Client, line: Line, operator_ids: list[int], chat: str, transfer: bool
) -> dict[str, Any]:
    """Drive one dialog through the script; count its history events. An action the API
    refuses ends the script early (and is reported): the events so far are still counted."""
    filed = await api.inbound(line, chat, "c-1", "Hello")
    dialog_id = filed.dialog_id
    refused = None
    try:
        await _script(api, line, operator_ids, chat, transfer, dialog_id)
    except ApiCallError as error:
        refused = str(error)
    detail = await api.dialog(dialog_id)
    workflow_id, run_id = detail["workflow"]["id"], detail["workflow"]["run_id"]
    completed = await _wait_closed(client, workflow_id, run_id, within=5)
    runs = []
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        runs.append(
            {
                "run_id": execution.run_id,
                "status": execution.status.name if execution.status else None,
                "events": await _events(client, workflow_id, execution.run_id),
            }
        )
    by_type = await _event_types(client, workflow_id, run_id)
    return {
        "dialog_id": dialog_id,
        "workflow_id": workflow_id,
        "run_id": run_id,
        "events": sum(by_type.values()),
        "by_type": by_type,
        "run_completed": completed,
        "refused": refused,
        "runs": runs,
        "events_all_runs": sum(run["events"] for run in runs),
    }


async def _script(
    api: Api, line: Line, operator_ids: list[int], chat: str, transfer: bool, dialog_id: int
) -> None:
    detail = await wait_detail(api, dialog_id, lambda d: bool(d["offered_to"]))
    owner = detail["offered_to"][0]
    await api.act(dialog_id, "accept", {"operator_id": owner})
    for round_ in range(1, ROUNDS + 1):
        if transfer and round_ == TRANSFER_AT:
            owner = next(o for o in operator_ids if o != owner)
            await api.act(dialog_id, "transfer", {"operator_id": owner})
        await api.act(dialog_id, "messages", {"operator_id": owner, "text": f"Answer {round_}"})
        if round_ < ROUNDS:
            await api.inbound(line, chat, f"c-{round_ + 1}", f"Question {round_ + 1}")
            # Let the workflow take the message before the next reply, as a real chat would.
            await wait_detail(api, dialog_id, lambda d: d["status"] != "operator_replied", 5)
    await api.act(dialog_id, "close", {"operator_id": owner})
    await api.inbound(line, chat, "c-rating", "1")


async def _events(client: Client, workflow_id: str, run_id: str | None) -> int:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return len(history.events)


async def _event_types(client: Client, workflow_id: str, run_id: str | None) -> dict[str, int]:
    """How many events of each type the run has, most frequent first (where history goes)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    counts = Counter(
        EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in history.events
    )
    return dict(counts.most_common())


async def _wait_closed(client: Client, workflow_id: str, run_id: str | None, within: float) -> bool:
    """Whether the run has ended within ``within`` s (a rating-wait timer may keep it open)."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    deadline = time.monotonic() + within
    while True:
        status = (await handle.describe()).status
        if status != WorkflowExecutionStatus.RUNNING:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
