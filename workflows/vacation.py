"""VacationWorkflow: when an operator's vacation ends, the waiting queues hear of it.

Nothing else happens at that moment (no one calls the API), so a workflow timer marks it:
at ``until`` the operator's lines are rebalanced and their waiting dialogs offered.
"""

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.operators import OperatorActivities


def workflow_id(operator_id: int) -> str:
    return f"operator-{operator_id}-vacation"


@workflow.defn
class VacationWorkflow:
    @workflow.run
    async def run(self, operator_id: int, until: datetime) -> None:
        await workflow.sleep(max(until - workflow.now(), timedelta(0)))
        await workflow.execute_activity_method(
            OperatorActivities.availability_changed,
            args=[operator_id, workflow.now()],
            start_to_close_timeout=timedelta(seconds=30),
        )
