"""How workflows call their activities: one timeout and retry policy for all of them."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

Arg = TypeVar("Arg")
Result = TypeVar("Result")

TIMEOUT = timedelta(seconds=30)
# Database and channel hiccups pass; retries go on until the activity succeeds.
RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10)
)


async def run(method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg) -> Result:
    """Run an activity method (of an activities class) with the common timeout and retries."""
    return await workflow.execute_activity_method(
        method, argument, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
    )


async def run_local(method: Callable[[Any, Arg], Awaitable[Result]], argument: Arg) -> Result:
    """The same as a local activity: one marker in history instead of three events."""
    return await workflow.execute_local_activity_method(
        method, argument, start_to_close_timeout=TIMEOUT, retry_policy=RETRY
    )
