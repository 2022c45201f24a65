"""JSON log lines (OPENLINES_LOG_FORMAT=json) carry what an operator searches logs by: the
workflow and run of an activity, and the dialog it works on."""

import json
import logging
from dataclasses import replace
from typing import Any

from pydantic import BaseModel
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from core.logs import DialogIdInterceptor, JsonFormatter


def line_of(record: logging.LogRecord) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(JsonFormatter().format(record))
    return parsed


def record(message: str, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("openlines.test").makeRecord(
        "openlines.test", logging.WARNING, __file__, 1, message, (), None, extra=extra
    )


def test_a_line_is_one_json_object_with_level_logger_and_message():
    line = line_of(record("outbox row not delivered", dialog_id=12))
    assert line["message"] == "outbox row not delivered"
    assert line["level"] == "WARNING"
    assert line["logger"] == "openlines.test"
    assert line["dialog_id"] == 12
    assert "trace_id" not in line  # tracing is off in tests


def test_an_activity_line_names_its_workflow_and_run():
    environment = ActivityEnvironment()
    environment.info = replace(environment.info, workflow_id="chat-5", workflow_run_id="run-1")
    line = environment.run(lambda: line_of(record("sent")))
    assert (line["workflow_id"], line["run_id"]) == ("chat-5", "run-1")


class Turn(BaseModel):
    dialog_id: int


class _Logs(ActivityInboundInterceptor):
    """The next step in the chain: formats a line as the activity would log it."""

    def __init__(self) -> None:
        pass

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return line_of(record("greeted"))


async def test_the_dialog_of_an_activity_input_is_on_its_lines_and_gone_after():
    note = DialogIdInterceptor().intercept_activity(_Logs())
    turn = ExecuteActivityInput(lambda: None, [Turn(dialog_id=41)], None, {})
    line = await note.execute_activity(turn)
    assert line["dialog_id"] == 41
    assert "dialog_id" not in line_of(record("after the activity"))
    unrelated = await note.execute_activity(ExecuteActivityInput(lambda: None, [3], None, {}))
    assert "dialog_id" not in unrelated
