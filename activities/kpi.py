"""The KPI activity: a dialog's answer ran out of time.

One transaction, safe to run twice: the dialog's overdue count is set (not added to), and a
notification is keyed by the dialog and the message waiting for its answer.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core.events.models import Notification
from core.events.publish import record
from core.line_settings import LineSettings
from core.models import Dialog, Line, Operator
from workflows.models import KpiOverdue


def dialog_url(public_url: str, dialog_id: int) -> str:
    return f"{public_url.rstrip('/')}/v1/dialogs/{dialog_id}"


def overdue_text(template: str, operator: str, dialog_id: int, url: str) -> str:
    """The line's text with ``#OPERATOR#`` and ``#DIALOG#`` (the number, linked) filled."""
    return template.replace("#OPERATOR#", operator).replace("#DIALOG#", f"[{dialog_id}]({url})")


class KpiActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], public_url: str) -> None:
        self._sessions = sessions
        self._public_url = public_url

    @activity.defn
    async def overdue(self, task: KpiOverdue) -> None:
        """Mark the dialog overdue; with ``notify``, tell each recipient once."""
        async with self._sessions() as session, session.begin():
            dialog = await session.get(Dialog, task.dialog_id, with_for_update={"key_share": True})
            if dialog is None:
                raise LookupError(f"dialog {task.dialog_id} does not exist")
            if dialog.kpi_overdue >= task.overdue:
                return  # done before
            dialog.kpi_overdue = task.overdue
            line = await session.get(Line, dialog.line_id)
            assert line is not None
            settings = getattr(LineSettings.model_validate(line.settings).kpi, task.item)
            who = [dialog.operator_id] if dialog.operator_id else list(dialog.offered_to)
            names = await session.scalars(select(Operator.name).where(Operator.id.in_(who)))
            operator = ", ".join(names) or "nobody"
            url = dialog_url(self._public_url, dialog.id)
            record(
                session,
                "kpi.overdue",
                dialog_id=dialog.id,
                operator_ids=who,
                item=task.item,
                since=task.since.isoformat(),
            )
            if not settings.notify:
                return
            text = overdue_text(settings.text, operator, dialog.id, url)
            recipients = await session.scalars(
                select(Operator.id).where(Operator.id.in_(settings.recipients))
            )
            for recipient in recipients:
                session.add(
                    Notification(
                        recipient_id=recipient,
                        kind="kpi.overdue",
                        text=text,
                        dialog_id=dialog.id,
                        url=url,
                        key=f"kpi:{dialog.id}:{task.item}:{task.since.isoformat()}",
                    )
                )
                record(
                    session,
                    "notification.created",
                    dialog_id=dialog.id,
                    operator_ids=[recipient],
                    kind="kpi.overdue",
                    text=text,
                )
