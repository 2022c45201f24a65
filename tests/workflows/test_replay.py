"""Every stored history of every workflow version must still replay with today's code.

A change that alters the commands a workflow issues for the same events breaks replay of
running dialogs; such a change needs ``workflow.patched`` (see the README).
"""

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.channel_delivery import ChannelDeliveryWorkflow
from workflows.dialog import DialogWorkflow

FOLDER = Path(__file__).parent / "histories"
# Each workflow's histories, by file name prefix.
WORKFLOWS = {"dialog": DialogWorkflow, "delivery": ChannelDeliveryWorkflow}
HISTORIES = sorted(p for prefix in WORKFLOWS for p in FOLDER.glob(f"{prefix}-*.json"))


def test_there_are_histories_to_replay():
    assert HISTORIES, "record some with: python -m tests.workflows.record_histories"


@pytest.mark.parametrize(
    ("name", "recorded"),
    [(p.stem, p.read_text()) for p in HISTORIES],
    ids=[p.stem for p in HISTORIES],
)
async def test_stored_history_replays(name: str, recorded: str):
    history = WorkflowHistory.from_json(name, recorded)
    workflow = WORKFLOWS[name.split("-")[0]]
    replayer = Replayer(workflows=[workflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
