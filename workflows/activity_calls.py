"""How workflows call their activities: one timeout and retry policy for all of them.

Every call is bounded. A local activity runs inside the workflow task and holds the dialog's
action lock while it retries, so an outage must end in an error the workflow can handle (an
update answers "unavailable", the main loop tries the step again later) rather than block the
dialog for good. Errors that cannot pass by retrying (a bug, a missing row) fail at once.
"""

import math
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

Arg = TypeVar("Arg")
Result = TypeVar("Result")

# One attempt; a database that hangs instead of refusing counts as a failed attempt.
ATTEMPT = timedelta(seconds=10)
# All attempts of a step of the main loop (a dialog action is bounded by its own deadline).
STEP = timedelta(minutes=1)
# All attempts of a regular activity (a channel or CRM call, apart from the dialog's lock).
REGULAR = timedelta(hours=1)
# Exception classes a retry cannot cure: a bug or a row that does not exist.
DETERMINISTIC = (
    "AssertionError",
    "AttributeError",
    "KeyError",
    "LookupError",
    "TypeError",
    "ValueError",
    "ValidationError",
    "IntegrityError",
)
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=DETERMINISTIC,
)


async def run(method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg) -> Result:
    """Run an activity method (of an activities class) with the common timeout and retries."""
    return await workflow.execute_activity_method(
        method,
        argument,
        start_to_close_timeout=ATTEMPT * 3,
        schedule_to_close_timeout=REGULAR,
        retry_policy=RETRY,
    )


async def run_local(
    method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg, within: timedelta = STEP
) -> Result:
    """The same as a local activity (one marker in history instead of three events), every
    attempt included ``within`` the given time.

    The number of attempts is bounded as well as the time: the local activity's
    schedule-to-close alone was seen not to stop its retries (temporalio 1.35).
    """
    pause = min(RETRY.maximum_interval or ATTEMPT, max(within / 4, RETRY.initial_interval))
    try:
        return await workflow.execute_local_activity_method(
            method,
            argument,
            start_to_close_timeout=min(ATTEMPT, within),
            schedule_to_close_timeout=within,
            retry_policy=RetryPolicy(
                initial_interval=RETRY.initial_interval,
                maximum_interval=pause,
                maximum_attempts=max(2, math.ceil(within / pause)),
                non_retryable_error_types=DETERMINISTIC,
            ),
        )
    except (ActivityError, ApplicationError) as error:  # a local one fails with its own error
        raise Failed(f"{getattr(method, '__name__', method)} failed: {error}") from error


class Failed(ApplicationError):
    """A local activity failed for good: its attempts or its time ran out, or it cannot
    succeed. The dialog's action answers "unavailable"; its main loop tries again later."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, type="ActivityFailed", non_retryable=True)
