"""`openlines temporal check` against a real cluster (the dev server): a namespace without
our search attributes is refused with the command that registers them, and that command,
run as printed, makes the namespace ready."""

import asyncio
import shlex
import uuid

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.testing import WorkflowEnvironment

from core.config import Settings
from core.temporal_check import check
from core.temporal_dev_server import find_binary


async def test_missing_search_attributes_are_named_with_the_command_that_registers_them(
    temporal: WorkflowEnvironment,
):
    address = temporal.client.service_client.config.target_host
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    await temporal.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    settings = Settings(temporal_address=address, temporal_namespace=namespace)

    client, report = await check(settings)
    assert client is not None
    [problem] = report.problems
    assert "search attributes missing" in problem
    command = problem.split("register them: ", 1)[1]
    assert command.startswith("temporal operator search-attribute create ")
    for name in ("LineId", "OperatorId", "DialogStatus", "ChannelType", "ClientId"):
        assert f"--name {name} --type" in command

    ran = await asyncio.create_subprocess_exec(
        find_binary("temporal"), *shlex.split(command)[1:], stderr=asyncio.subprocess.PIPE
    )
    _, errors = await asyncio.wait_for(ran.communicate(), 60)
    assert ran.returncode == 0, errors
    _, report = await check(settings)
    assert report.problems == []


async def test_an_unknown_namespace_is_named_with_the_command_that_creates_it(
    temporal: WorkflowEnvironment,
):
    address = temporal.client.service_client.config.target_host
    _, report = await check(Settings(temporal_address=address, temporal_namespace="nowhere"))
    assert report.problems == [
        f"namespace 'nowhere' does not exist on {address}; create it: temporal operator "
        f"namespace create --address {address} --namespace nowhere"
    ]
