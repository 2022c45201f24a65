"""An ASGI app served by uvicorn inside the running event loop, and free local ports.

The worker serves its metrics and probes this way; the tests and the benchmark serve their
fakes (webhook receivers, Telegram, the chaos receiver) the same way.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (someone may take it before the caller does)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port); ``OSError`` if it cannot be."""
    bound = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        bound.bind((host, port))
    except OSError:
        bound.close()
        raise
    return bound


@contextlib.asynccontextmanager
async def serving(
    app: Any,
    bound: socket.socket,
    lifespan: Literal["on", "off"] = "off",
    grace_s: int | None = None,
) -> AsyncIterator[None]:
    """Serve ``app`` on ``bound`` for the duration of the block, then stop cleanly (open
    requests finish, within ``grace_s`` seconds when given) and close the socket."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=grace_s,
        log_config=None,  # its records go to the process's handlers (JSON lines, if so set)
    )
    server = uvicorn.Server(config)
    # Signals belong to the process (the worker drains on SIGTERM); uvicorn would take them
    # over and raise them again on its way out.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[bound]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the local HTTP server did not start")
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
        bound.close()
