"""CrmSyncWorkflow: a dialog's lead, created or reassigned apart from the dialog.

The relay starts one run per committed outbox row (``lead``: create the dialog's lead;
``lead_owner``: a transfer made someone else responsible for it). A CRM outage only delays
the lead: the activity is retried, ever more slowly, until the CRM answers, while the
dialog's own workflow goes on.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.crm import CrmActivities
    from workflows.models import CrmOutcome, CrmTask

# The task and its outcome are re-exported for the relay, which starts the runs.
__all__ = ["CrmOutcome", "CrmSyncWorkflow", "CrmTask", "workflow_id"]

# Longer than every HTTP call of one attempt together (a lead takes up to seven, 10 s each):
# an attempt Temporal gave up on while it still ran could add a second lead in the CRM.
TIMEOUT = timedelta(minutes=2)
# No attempt limit: the lead is owed, however long the CRM is down.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=0,
)


def workflow_id(task: CrmTask) -> str:
    """One creation per dialog; one reassignment per outbox row."""
    if task.kind == "create_lead":
        return f"crm-lead-{task.dialog_id}"
    return f"crm-lead-owner-{task.request_id}"


@workflow.defn
class CrmSyncWorkflow:
    @workflow.run
    async def run(self, task: CrmTask) -> CrmOutcome:
        method = (
            CrmActivities.create_lead if task.kind == "create_lead" else CrmActivities.reassign_lead
        )
        return await workflow.execute_activity_method(
            method, task, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
        )
