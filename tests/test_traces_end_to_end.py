"""One trace follows a client message end to end: ``openlines dev`` with tracing on, its API
and worker exporting to a local OTLP collector.

The client's POST is answered by the API; the relay (in the worker) delivers the outbox row
the POST committed; the dialog workflow runs and its activity greets the client; the relay
hands the welcome text to the chat's delivery workflow, whose activity POSTs it to the
channel's receiver. Every one of those spans must be in the POST's trace, each under the one
before it.
"""

import asyncio
import gzip
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channels.webhook.signing import signed_headers
from core.tracing import redacted_url
from tests.channels.receiver import Receiver, serve_receiver
from tests.dev_stack import Stack, stack_database
from tests.local_server import serving


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class Collector:
    """An OTLP/HTTP trace receiver (protobuf), keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.app = Starlette(routes=[Route("/v1/traces", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            {a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        return Response(b"", media_type="application/x-protobuf")


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@asynccontextmanager
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    found = Collector()
    async with serving(found.app) as url:
        yield found, url


INBOUND = "POST /v1/channels/{channel_id}/messages"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_one_trace_spans_inbound_post_relay_workflow_activity_and_send(
    kind: str, tmp_path: Path
) -> None:
    async with (
        collector() as (collected, collector_url),
        serve_receiver() as receiver,
        stack_database(kind) as database,
    ):
        stack = Stack(
            tmp_path / "data",
            env={
                **database,
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector_url,
                "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds between exports
            },
        )
        stack.start()
        stack.drain()
        try:
            api = f"http://127.0.0.1:{stack.api_port}"
            admin = {"Authorization": f"Bearer {stack.printed('Admin key')}"}
            async with httpx.AsyncClient(base_url=api, headers=admin, timeout=30) as http:
                await _client_writes(http, receiver)
            post = await _span_when(collected, lambda s: s.name == INBOUND)
            send = await _span_when(
                collected, lambda s: s.trace_id == post.trace_id and _posts_to(s, receiver.url)
            )
        finally:
            assert stack.stop() == 0, "".join(stack.output[-50:])

    chain = _ancestors(collected.spans, send)
    names = [(span.service, span.name) for span in chain]
    expected = [
        ("openlines-api", INBOUND),
        ("openlines-worker", "relay message"),
        ("openlines-worker", "SignalWithStartWorkflow:DialogWorkflow"),
        ("openlines-worker", "RunActivity:greet"),
        ("openlines-worker", "relay deliver"),
        ("openlines-worker", "SignalWithStartWorkflow:ChannelDeliveryWorkflow"),
        ("openlines-worker", "RunActivity:send"),
    ]
    # From the POST down, each an ancestor of the next; other spans (database statements,
    # StartActivity, ...) may come between them.
    positions = [names.index(step) if step in names else -1 for step in expected]
    assert -1 not in positions, f"{expected[positions.index(-1)]} is not in the chain {names}"
    assert positions == sorted(positions), names
    assert chain[0] == post and post.parent_id == "", "the client's POST begins the trace"
    # The database work of both processes is in the trace too.
    for service in ("openlines-api", "openlines-worker"):
        statements = [
            s
            for s in collected.spans
            if s.trace_id == post.trace_id and s.service == service and "db.system" in s.attributes
        ]
        assert statements, f"no SQL statement of {service} in the trace"
    # Background loops (the relay's polling, the metrics sampler) export no lone statements.
    lone = [s for s in collected.spans if not s.parent_id and "db.system" in s.attributes]
    assert not lone, lone[:3]
    # The workflow runs themselves: marks under the signal that started each.
    for workflow in ("DialogWorkflow", "ChannelDeliveryWorkflow"):
        started = chain[names.index(("openlines-worker", f"SignalWithStartWorkflow:{workflow}"))]
        runs = [s for s in collected.spans if s.name == f"RunWorkflow:{workflow}"]
        assert any(run.parent_id == started.span_id for run in runs), (workflow, runs)


async def _client_writes(http: httpx.AsyncClient, receiver: Receiver) -> None:
    """A line with a webhook channel to the receiver; a client writes; the line's welcome
    text reaches the receiver."""
    line = (await http.post("/v1/lines", json={"name": "Traced"})).json()
    created = await http.post(
        f"/v1/lines/{line['id']}/channels",
        json={"type": "webhook", "config": {"url": receiver.url}},
    )
    assert created.status_code == 201, created.text
    channel, secret = created.json()["id"], created.json()["secret"]
    message = {"external_id": "m1", "text": "Hi"}
    raw = json.dumps({"chat": {"external_id": "c1", "name": "Bob"}, "message": message}).encode()
    headers = {**signed_headers(secret, raw, datetime.now(UTC)), "Content-Type": "application/json"}
    answer = await http.post(f"/v1/channels/{channel}/messages", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text
    for _ in range(300):
        if receiver.requests:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the welcome text was not sent")


async def _span_when(collected: Collector, matches: Callable[[Span], bool]) -> Span:
    """The first span that matches, once exported (batches go every 100 ms)."""
    for _ in range(300):
        found = [span for span in collected.spans if matches(span)]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    pytest.fail(f"no such span among {[(s.service, s.name) for s in collected.spans]}")


def _posts_to(span: Span, url: str) -> bool:
    """An httpx client span of a request to ``url`` (old or new semantic conventions)."""
    target = span.attributes.get("url.full") or span.attributes.get("http.url") or ""
    return str(target).startswith(url)


def _ancestors(spans: list[Span], span: Span) -> list[Span]:
    """``span`` and its ancestors, root first."""
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id:
        parent = by_id.get(chain[-1].parent_id)
        assert parent is not None, f"the parent of {chain[-1]} was not exported"
        chain.append(parent)
    return chain[::-1]


def test_without_an_endpoint_no_tracing_code_is_loaded() -> None:
    """Off means free: no SDK, exporter or instrumentation in the API's or worker's process
    (FastAPI itself imports the small OpenTelemetry API package)."""
    program = (
        "import sys; from api.app import create_app; import worker; create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'opentelemetry.instrumentation', "
        "'temporalio.contrib.opentelemetry'))))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    loaded = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"


def test_urls_in_spans_lose_their_tokens() -> None:
    """A Telegram bot token and a Bitrix24 webhook token travel in their URLs' paths."""
    assert redacted_url("https://api.telegram.org/bot123456:AAE-x_yz/sendMessage") == (
        "https://api.telegram.org/*/sendMessage"
    )
    assert redacted_url("https://acme.bitrix24.ru/rest/1/ab12cd34ef56gh78/crm.lead.add?x=1") == (
        "https://acme.bitrix24.ru/rest/1/*/crm.lead.add"
    )
    assert (
        redacted_url("http://user:secret@127.0.0.1:5555/v1/hook") == "http://127.0.0.1:5555/v1/hook"
    )
