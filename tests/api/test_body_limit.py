"""Bodies over the limit are refused with 413 before parsing: by their declared length, or
while they stream in, holding no more than the limit and a chunk."""

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import Message

from api.body_limit import BodyLimit
from tests.api.test_channel_move import add_channel, create_line
from tests.conftest import client_for

LIMIT = 65536


async def test_a_declared_body_over_the_limit_is_413_and_a_body_at_it_is_read(
    app: FastAPI, admin: Any
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    path = f"/v1/channels/{channel['id']}/messages"
    text = "x" * 9000
    body = {"chat": {"external_id": "big"}, "message": {"external_id": "m", "text": text}}
    async with client_for(app, channel["secret"]) as as_channel:
        large = await as_channel.post(path, content=b"{" + b" " * LIMIT + b"}")
        fits = await as_channel.post(path, json=body)

    assert large.status_code == 413
    assert large.headers["content-type"] == "application/problem+json"
    assert large.json()["detail"] == f"the request body is larger than {LIMIT} bytes"
    assert fits.status_code == 202, fits.text


async def test_a_streamed_body_is_cut_off_past_the_limit(app: FastAPI, admin: Any) -> None:
    channel = await add_channel(admin, await create_line(admin))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(160):  # 10 MB without a Content-Length
            yield b" " * 65536

    async with client_for(app, channel["secret"]) as as_channel:
        answer = await as_channel.post(
            f"/v1/channels/{channel['id']}/messages",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 413, answer.text
    assert answer.json()["title"] == "Content too large"


@pytest.mark.parametrize("declared", [True, False])
async def test_ten_megabytes_are_never_held(declared: bool) -> None:
    """The middleware pulls at most one chunk past the limit from the server."""
    pulled: list[int] = []
    sent: list[Message] = []
    chunk = b" " * 65536

    async def receive() -> Message:
        pulled.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < 160}

    async def send(message: Message) -> None:
        sent.append(message)

    async def reads_everything(scope: Any, receive: Callable[..., Any], send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        raise AssertionError("the whole body was read")

    headers = [(b"content-length", str(160 * len(chunk)).encode())] if declared else []
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    await BodyLimit(reads_everything, limit=LIMIT)(scope, receive, send)

    assert sum(pulled) <= LIMIT + len(chunk)
    assert sent[0]["status"] == 413
