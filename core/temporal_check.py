"""Is the configured Temporal cluster ready for openlines? (``openlines temporal check``)

The API and the worker run the same check as they start, so a wrong address, a missing
namespace or an unregistered search attribute stops them with a message that says what to
do, instead of dialogs failing one by one later.
"""

import asyncio
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.temporal import connect, tls_enabled
from workflows import search_attributes
from workflows.search_attributes import cli_type


class TemporalNotReady(Exception):
    """The cluster cannot serve openlines as configured; the message says what to do."""


@dataclass
class Report:
    """What the check found: problems stop the process, notes do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def check(settings: Settings, runtime: Runtime | None = None) -> tuple[Client | None, Report]:
    """Connect and look: the namespace exists, our search attributes are registered with
    their types. Returns the client (None when unreachable) and the report."""
    report = Report()
    where = f"{settings.temporal_address} (namespace {settings.temporal_namespace})"
    try:
        client = await asyncio.wait_for(
            connect(settings, runtime), timeout=settings.temporal_call_timeout
        )
    except (RuntimeError, TimeoutError, OSError) as error:  # OSError: a TLS file unreadable
        report.problems.append(
            f"cannot reach Temporal at {settings.temporal_address}: "
            f"{str(error) or 'no answer in time'}. Check OPENLINES_TEMPORAL_ADDRESS and, for "
            "a TLS frontend, OPENLINES_TEMPORAL_TLS / _TLS_CA / _TLS_CERT / _TLS_KEY / "
            "_TLS_SERVER_NAME or OPENLINES_TEMPORAL_API_KEY"
        )
        return None, report
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=settings.temporal_namespace),
            timeout=timedelta(seconds=settings.temporal_call_timeout),
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            report.problems.append(
                f"namespace {settings.temporal_namespace!r} does not exist on "
                f"{settings.temporal_address}; create it: temporal operator namespace create "
                f"{_connection_flags(settings)} --namespace {settings.temporal_namespace}"
            )
        else:
            report.problems.append(f"cannot describe the namespace on {where}: {error.message}")
        return client, report
    await _check_search_attributes(client, settings, report)
    return client, report


async def _check_search_attributes(client: Client, settings: Settings, report: Report) -> None:
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=settings.temporal_namespace),
            timeout=timedelta(seconds=settings.temporal_call_timeout),
        )
    except RPCError as error:  # an API key without operator rights, say
        report.notes.append(
            f"could not list search attributes ({error.message}); make sure these are "
            f"registered: {_flags(search_attributes.ALL)}"
        )
        return
    missing: list[SearchAttributeKey[Any]] = []
    for key in search_attributes.ALL:
        registered = listed.custom_attributes.get(key.name)
        if registered is None:
            missing.append(key)
        elif registered != int(key.indexed_value_type):
            report.problems.append(
                f"search attribute {key.name} is registered as "
                f"{cli_type(SearchAttributeIndexedValueType(registered))}, "
                f"openlines needs {cli_type(key.indexed_value_type)}"
            )
    if missing:
        report.problems.append(
            f"search attributes missing in namespace {settings.temporal_namespace!r}: "
            f"{', '.join(key.name for key in missing)}; register them: temporal operator "
            f"search-attribute create {_connection_flags(settings)} --namespace "
            f"{settings.temporal_namespace} {_flags(missing)}"
        )


def _connection_flags(settings: Settings) -> str:
    """The ``temporal`` CLI's flags that reach the cluster as openlines does (the API key by
    its variable, never its value)."""
    flags = [f"--address {settings.temporal_address}"]
    if tls_enabled(settings):
        flags.append("--tls")
    for flag, value in (
        ("--tls-ca-path", settings.temporal_tls_ca),
        ("--tls-cert-path", settings.temporal_tls_cert),
        ("--tls-key-path", settings.temporal_tls_key),
        ("--tls-server-name", settings.temporal_tls_server_name),
    ):
        if value is not None:
            flags.append(f"{flag} {shlex.quote(str(value))}")
    if settings.temporal_api_key is not None:
        flags.append('--api-key "$OPENLINES_TEMPORAL_API_KEY"')
    return " ".join(flags)


def _flags(keys: Sequence[SearchAttributeKey[Any]]) -> str:
    """``--name X --type Y`` for each key, as ``temporal operator search-attribute create``
    takes them."""
    return " ".join(f"--name {key.name} --type {cli_type(key.indexed_value_type)}" for key in keys)


async def require(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The connected client, or ``TemporalNotReady`` saying every problem found."""
    client, report = await check(settings, runtime)
    if report.problems or client is None:
        raise TemporalNotReady("; ".join(report.problems))
    return client
