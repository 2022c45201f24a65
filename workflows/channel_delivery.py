"""ChannelDeliveryWorkflow: a chat's outbound messages, sent through its channel in order.

One run per chat at a time (``delivery-chat-<chat id>``), started or signalled by the relay
with each message id owed (signal-with-start), so the messages of a chat reach the client in
the order they were written and the dialog never waits on a slow channel. Transient failures
are retried for hours (after the channel's ``retry_after`` when it gave one); a message that
keeps failing is marked failed and the next one goes. The run ends when idle, and continues as
new after ``MESSAGES_PER_RUN``; history holds message ids only, never texts.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from channels.delivery import DeliveryActivities, DeliveryFailure

RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
ATTEMPT_TIMEOUT = timedelta(seconds=60)  # one send (15 s at most) and two short transactions
KEEP_TRYING = timedelta(hours=6)
IDLE = timedelta(minutes=10)  # the run ends after this long with nothing to send
MESSAGES_PER_RUN = 500
# The patch that lets a message be owed again while it is being sent (workflow.patched).
OWED_AGAIN_WHILE_SENDING = "owed-again-while-sending"


def workflow_id(chat_id: int) -> str:
    return f"delivery-chat-{chat_id}"


@workflow.defn
class ChannelDeliveryWorkflow:
    def __init__(self) -> None:
        self._owed: list[int] = []

    @workflow.signal
    def owe(self, message_id: int) -> None:
        """Another message for the client (one already owed is not owed twice)."""
        if message_id not in self._owed:
            self._owed.append(message_id)

    @workflow.run
    async def run(self, carried: list[int]) -> None:
        """Send what is owed, oldest first; ``carried``: owed by the run before this one."""
        self._owed = [*carried, *(m for m in self._owed if m not in carried)]
        for _ in range(MESSAGES_PER_RUN):
            try:
                await workflow.wait_condition(lambda: bool(self._owed), timeout=IDLE)
            except TimeoutError:
                return  # idle: a later message starts a new run
            if workflow.patched(OWED_AGAIN_WHILE_SENDING):
                # Taken off before it goes: owed again meanwhile (a resend after it failed,
                # before this run moved on), it goes again.
                await self._deliver(self._owed.pop(0))
            else:  # runs from before: an owe for the message being sent was dropped
                await self._deliver(self._owed[0])
                self._owed.pop(0)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._owed)

    async def _deliver(self, message_id: int) -> None:
        try:
            await workflow.execute_activity_method(
                DeliveryActivities.send,
                message_id,
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                schedule_to_close_timeout=KEEP_TRYING,
                retry_policy=RETRY,
                summary=f"message {message_id}",
            )
        except ActivityError as error:
            reason = str(error.cause or error)[:500]
            await workflow.execute_activity_method(
                DeliveryActivities.give_up,
                DeliveryFailure(message_id=message_id, reason=reason),
                start_to_close_timeout=ATTEMPT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
