"""Serve an ASGI app on 127.0.0.1 and a free port, in the test's event loop (the fakes of
Bitrix24, Telegram's Bot API and webhook receivers run this way)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from core import local_http


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The app, running; yields its base URL (``http://127.0.0.1:<port>``)."""
    bound = local_http.bound_socket("127.0.0.1", 0)
    port = bound.getsockname()[1]
    # A short grace: a client still holding a keep-alive connection must not stall the test.
    async with local_http.serving(app, bound, grace_s=2):
        yield f"http://127.0.0.1:{port}"
