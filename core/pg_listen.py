"""Listening for PostgreSQL notifications on one channel, reconnecting when the connection
drops: the outbox relay's wake-ups and the API's typing signals use it."""

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy.engine import make_url

RECONNECT_S = 1.0


def conninfo_of(database_url: str | None) -> str | None:
    """psycopg's connection string for a PostgreSQL URL; None for another database."""
    url = make_url(database_url) if database_url else None
    if url is None or url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(
    conninfo: str,
    channel: str,
    notified: Callable[[str], None],
    up: Callable[[bool], None],
    log: logging.Logger,
) -> None:
    """Call ``notified`` with each notification's payload, forever; ``up`` says whether the
    listening connection is up (True once LISTEN took effect, False when it drops)."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {channel}")
                up(True)
                async for notification in conn.notifies():
                    notified(notification.payload)
        except (psycopg.Error, OSError) as error:
            log.warning("not listening for %s notifications: %s", channel, error)
        finally:
            up(False)
        await asyncio.sleep(RECONNECT_S)
