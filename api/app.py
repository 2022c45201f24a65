"""The FastAPI application factory."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import start_http_server

import console
from api import errors, metrics, openapi
from api.body_limit import BodyLimit
from api.event_feed import EventFeed
from api.rate_limit import Limits
from api.routes import (
    agreements,
    api_keys,
    bots,
    channels,
    crm,
    departments,
    dialog_actions,
    dialogs,
    events,
    inbound,
    kpi,
    lines,
    me,
    messages,
    notifications,
    operators,
    quick_answers,
    ratings,
    service,
    typing_status,
    webhooks,
)
from api.typing_hub import TypingHub
from channels.telegram import endpoints as telegram_endpoints
from channels.webchat import endpoints as webchat_endpoints
from channels.webchat import live as webchat_live
from channels.webchat import pages as webchat_pages
from core import tracing
from core.config import Settings, get_settings
from core.db import create_engine, session_factory

log = logging.getLogger("openlines.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the engine opens at startup and closes at shutdown."""
    settings = settings or get_settings()
    tracing.setup("openlines-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.resolved_database_url
        engine = create_engine(url)
        reader = create_engine(url, read_only=True) if url.startswith("sqlite") else engine
        app.state.sessions = session_factory(engine)
        app.state.read_sessions = session_factory(reader)
        app.state.temporal = None  # connected on first use
        app.state.event_feed = EventFeed(app.state.read_sessions)
        app.state.typing = TypingHub(app.state.sessions, url)
        exporter = None
        if settings.metrics_port is not None:
            exporter, _ = start_http_server(settings.metrics_port, settings.api_host)
        if settings.bootstrap_admin_key is not None:
            log.warning(
                "OPENLINES_BOOTSTRAP_ADMIN_KEY is set: whoever holds it is an admin. Issue "
                "keys with POST /v1/api-keys (or `openlines keys create`), then unset it."
            )
        if settings.secret_key is None:
            log.warning("OPENLINES_SECRET_KEY is not set: secrets are stored unencrypted.")
        async with app.state.typing.running():
            yield
        await app.state.event_feed.close()
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        await engine.dispose()
        await reader.dispose()

    app = FastAPI(
        title="openlines",
        version="0.1.0",
        summary="Contact-center dialog orchestrator on Temporal",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.limits = Limits.of(settings)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    metrics.install(app)
    tracing.instrument_app(app)
    for module in (
        service,
        operators,
        departments,
        lines,
        channels,
        api_keys,
        me,
        inbound,
        telegram_endpoints,
        webchat_endpoints,
        webchat_live,
        webchat_pages,
        console,
        dialogs,
        kpi,
        dialog_actions,
        messages,
        ratings,
        agreements,
        bots,
        crm,
        webhooks,
        notifications,
        quick_answers,
        typing_status,
        events,
    ):
        app.include_router(module.router)
    app.mount("/widget/static", webchat_pages.static, name="widget-static")
    app.mount("/console/static", console.static, name="console-static")
    return app
