"""The Temporal client, configured the same way for the API, the worker and the tools."""

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.types import MethodAsyncSingleParam, ParamType, ReturnType, SelfType

from core.config import Settings


async def connect(settings: Settings) -> Client:
    """Connect to the configured Temporal frontend; pydantic models travel as JSON."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


async def start_once(
    client: Client,
    run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    *,
    id: str,
    task_queue: str,
) -> None:
    """Start a workflow that runs once under its id: a second start (a redelivered outbox row,
    another worker's relay) is refused by Temporal and is no error here."""
    try:
        await client.start_workflow(
            run,
            arg,
            id=id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        pass  # started before
