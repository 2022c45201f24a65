"""Keeping secrets out of httpx's request log: it logs every request URL at INFO, and some
services (the Telegram Bot API, Bitrix24 webhooks) take a token in the URL."""

import logging
from collections.abc import Callable

Scrub = Callable[[str], str]


class _ScrubbedLog(logging.Filter):
    """Passes each log record's message through ``scrub``."""

    def __init__(self, scrub: Scrub) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def scrub_httpx_log(scrub: Scrub) -> None:
    """Install a filter on the ``httpx`` logger that blanks what ``scrub`` blanks (once, however
    often a module is imported)."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _ScrubbedLog) and f.scrub is scrub for f in httpx_log.filters):
        httpx_log.addFilter(_ScrubbedLog(scrub))
