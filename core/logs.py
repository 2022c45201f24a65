"""Log lines as text or as JSON (``OPENLINES_LOG_FORMAT=json``), with the ids to find more.

A JSON line carries the trace and span ids (tracing on), the Temporal workflow and run ids
(in workflow and activity code) and the dialog id where one is known: passed as
``extra={"dialog_id": ...}``, or the ``dialog_id`` of the running activity's input, which
``DialogIdInterceptor`` notes for the activity's duration.
"""

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from core import tracing

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

_dialog_id: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "openlines_dialog_id", default=None
)


def setup(format: Literal["text", "json"], level: int = logging.INFO) -> None:
    """Send the process's log records to stderr, one line each, in ``format``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the ids known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **tracing.current_ids(),
        }
        # temporalio's workflow and activity loggers put their info dict on the record.
        temporal = getattr(record, "temporal_workflow", None) or getattr(
            record, "temporal_activity", None
        )
        if isinstance(temporal, dict):
            line["workflow_id"] = temporal.get("workflow_id")
            line["run_id"] = temporal.get("run_id")
        elif activity.in_activity():
            info = activity.info()
            line["workflow_id"], line["run_id"] = info.workflow_id, info.workflow_run_id
        dialog_id = getattr(record, "dialog_id", None) or _dialog_id.get()
        if dialog_id is not None:
            line["dialog_id"] = dialog_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class DialogIdInterceptor(Interceptor):
    """Notes the dialog an activity works on (its input's ``dialog_id``) for log lines."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _NoteDialogId(next)


class _NoteDialogId(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        dialog_id = getattr(input.args[0], "dialog_id", None) if input.args else None
        token = _dialog_id.set(dialog_id if isinstance(dialog_id, int) else None)
        try:
            return await self.next.execute_activity(input)
        finally:
            _dialog_id.reset(token)
