"""OpenTelemetry traces: on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, absent otherwise.

One trace follows a client message from the inbound POST, through the outbox (the row keeps
the W3C ``traceparent`` of the transaction that wrote it), the relay's signal, the dialog
workflow and its activities, to the outbound channel send. Off, nothing of OpenTelemetry is
imported and every helper here returns at once.

The standard ``OTEL_*`` variables configure the exporter (OTLP over HTTP) and the service
name (``OTEL_SERVICE_NAME``; ``openlines-api`` or ``openlines-worker`` by default).
"""

import atexit
import contextlib
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from fastapi import FastAPI
    from temporalio.client import Interceptor

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# Probes and scrapes every few seconds would bury the traces that matter.
_UNTRACED_PATHS = "healthz,readyz,metrics"

_enabled = False


def enabled() -> bool:
    """Whether this process exports traces."""
    return _enabled


def setup(service_name: str) -> bool:
    """Export this process's spans when an OTLP endpoint is configured; returns whether.

    Call it before the process creates database engines or HTTP clients: the SQLAlchemy and
    httpx instrumentations hook their constructors.
    """
    global _enabled
    if _enabled:
        return True
    if not any(os.environ.get(name) for name in _ENDPOINT_VARIABLES):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    # Resource.create lets OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default.
    defaults = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service_name}
    provider = TracerProvider(
        resource=Resource.create(defaults), sampler=ParentBased(root=_no_lone_client_spans())
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # sends the spans still batched
    HTTPXClientInstrumentor().instrument(
        request_hook=_redact_url, async_request_hook=_redact_url_async
    )
    # Its declared range ends below SQLAlchemy 2.1, which it traces well all the same
    # (tests/test_traces_end_to_end.py finds both processes' statements in the trace).
    SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
    _enabled = True
    return True


def instrument_app(app: "FastAPI") -> None:
    """Trace the app's requests (not its probes and scrapes)."""
    if not _enabled:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # Not a span per ASGI message: an event stream would make one per event sent.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=_UNTRACED_PATHS, exclude_spans=["receive", "send"]
    )


def temporal_interceptors() -> list["Interceptor"]:
    """The Temporal client's interceptors: the tracing one when tracing is on.

    A worker built on the client inherits it, so workflow runs, signals, updates and
    activities continue the trace of whoever started or signalled them.
    """
    if not _enabled:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store beside work done later."""
    if not _enabled:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)  # W3C, whatever OTEL_PROPAGATORS says
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(traceparent: str | None, name: str, **attributes: Any) -> Iterator[None]:
    """A span named ``name`` that continues the trace a stored ``traceparent`` began."""
    if not _enabled:
        yield
        return
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = (
        TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        if traceparent
        else None
    )
    tracer = trace.get_tracer("openlines")
    with tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield


def current_ids() -> dict[str, str]:
    """The current trace and span ids, for log lines; empty with tracing off or no span."""
    if not _enabled:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def redacted_url(url: str) -> str:
    """``url`` without what may be a credential: the query, and any path segment that is not
    a plain word or a short number (a Telegram bot token, a Bitrix24 webhook token)."""
    parts = urlsplit(url)
    segments = [
        segment if _PLAIN_SEGMENT.fullmatch(segment) else "*" for segment in parts.path.split("/")
    ]
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], "/".join(segments), "", ""))


_PLAIN_SEGMENT = re.compile(r"[A-Za-z._-]*|[0-9]{1,10}|[A-Za-z0-9]{1,4}")


def _redact_url(span: Any, request: Any) -> None:
    """httpx spans record the URL; tokens travel in some URLs' paths."""
    if span.is_recording():
        url = redacted_url(str(request.url))
        span.set_attribute("url.full", url)
        span.set_attribute("http.url", url)


async def _redact_url_async(span: Any, request: Any) -> None:
    _redact_url(span, request)


def _no_lone_client_spans() -> Any:
    """The sampler of spans that begin a trace: it drops client spans (an SQL statement, an
    HTTP call) that have no parent. Background loops (the relay's polling, the metrics
    sampler, probes) would otherwise export a one-span trace for each of their queries."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
    from opentelemetry.trace import SpanKind

    class NoLoneClientSpans(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: Any = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind == SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

        def get_description(self) -> str:
            return "NoLoneClientSpans"

    return NoLoneClientSpans()
