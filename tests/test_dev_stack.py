"""``openlines dev`` as a user runs it: the dev server from the installed ``temporal`` binary,
the worker and the API, on free ports and a fresh data folder."""

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from tests.dev_stack import Stack
from workflows import search_attributes


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "data")
    yield stack
    if stack.process is not None and stack.process.poll() is None:
        stack.stop()  # a failed test still lets the stack shut its children down


async def test_dev_runs_everything_and_keeps_data_across_restarts(stack: Stack):
    stack.start()
    api = stack.printed("API ")
    key = stack.printed("Admin key")
    assert api == f"http://127.0.0.1:{stack.api_port}"
    assert stack.printed("Temporal UI") == f"http://127.0.0.1:{stack.ui_port}"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers) as http:
        assert (await http.get("/readyz")).json()["temporal"] == "ok"
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get(stack.printed("Temporal UI"))).status_code == 200
        created = await http.post("/v1/lines", json={"name": "Support"})
        assert created.status_code == 201

    client = await Client.connect(f"127.0.0.1:{stack.temporal_port}")
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    for key_def in search_attributes.ALL:
        assert key_def.name in listed.custom_attributes
    pollers = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name="openlines"),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    assert pollers.pollers, "the worker is not polling the openlines task queue"

    assert stack.stop() == 0
    for port in (stack.api_port, stack.temporal_port, stack.ui_port):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))  # everything let go of its port

    stack.start()
    assert stack.printed("Admin key") == key
    async with httpx.AsyncClient(base_url=api, headers=headers) as http:
        lines = (await http.get("/v1/lines")).json()
    assert [line["name"] for line in lines] == ["Support"]
    assert stack.stop() == 0


def test_a_busy_port_gets_a_clear_message(tmp_path: Path):
    stack = Stack(tmp_path / "data")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", stack.api_port))
        busy.listen()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINES_")}
        result = subprocess.run(stack.args(), capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert f"port {stack.api_port} (API) is busy" in result.stderr
    assert "--api-port" in result.stderr
