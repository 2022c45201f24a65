"""The Temporal client, configured the same way for the API, the worker and the tools."""

from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig
from temporalio.types import MethodAsyncSingleParam, ParamType, ReturnType, SelfType

from core import tracing
from core.config import Settings


def tls_enabled(settings: Settings) -> bool:
    """Whether the connection uses TLS: asked for, or implied by a TLS setting or an API key."""
    return settings.temporal_tls or any(
        value is not None
        for value in (
            settings.temporal_tls_ca,
            settings.temporal_tls_cert,
            settings.temporal_tls_key,
            settings.temporal_tls_server_name,
            settings.temporal_api_key,
        )
    )


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS as the settings ask: off, on with the system's CAs, or with our own files."""
    files = TLSConfig(
        server_root_ca_cert=_read(settings.temporal_tls_ca),
        client_cert=_read(settings.temporal_tls_cert),
        client_private_key=_read(settings.temporal_tls_key),
        domain=settings.temporal_tls_server_name,
    )
    if files != TLSConfig():
        return files
    return tls_enabled(settings)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """Connect to the configured Temporal frontend; pydantic models travel as JSON.

    With tracing on, the client carries the OpenTelemetry interceptor, so workflows started
    or signalled here, and the workers built on this client, continue the caller's trace.
    """
    api_key = settings.temporal_api_key
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=tls_config(settings),
        api_key=api_key.get_secret_value() if api_key else None,
        interceptors=tracing.temporal_interceptors(),
        runtime=runtime,
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
