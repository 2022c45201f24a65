"""WebhookDeliveryWorkflow: one event to one subscription, retried with backoff.

One run per delivery row (``webhook-delivery-<delivery_id>``), so starting it twice is
harmless. The retries are Temporal's: an unreachable receiver costs no worker and no database
connection while it waits, and the waits survive restarts. Between the first and the last of the
12 attempts pass about 27 minutes (1 s, 2 s, 4 s ... 512 s, then 10 min).
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import ATTEMPTS, TIMEOUT_S, WebhookActivities

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=ATTEMPTS,
)
# The POST is cut off after TIMEOUT_S; the rest is two short transactions.
ATTEMPT_TIMEOUT = timedelta(seconds=TIMEOUT_S + 20)


def workflow_id(delivery_id: int) -> str:
    return f"webhook-delivery-{delivery_id}"


@workflow.defn
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, delivery_id: int) -> str:
        """The delivery's status: ``delivered``, or ``failed`` when not sent because the
        subscription was paused or deleted meanwhile. Fails (the log row says ``failed``) when
        the last attempt did."""
        status: str = await workflow.execute_activity_method(
            WebhookActivities.deliver,
            delivery_id,
            start_to_close_timeout=ATTEMPT_TIMEOUT,
            retry_policy=RETRY,
        )
        return status
