"""The SSE stream, read for real from the app under uvicorn: operator filtering, resuming
after Last-Event-ID or ?after=, live events, keep-alives, and who may follow whom.

ASGITransport would buffer a response that never ends, so the app runs on a local port.
"""

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy
import uvicorn
from fastapi import FastAPI

from api import event_feed
from api.routes import events as stream
from core.events.models import Event
from tests.conftest import ADMIN_KEY, client_for

PROBLEM_JSON = "application/problem+json"


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, Any]


@pytest.fixture
async def base_url(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The app served on a local port (the fixture's lifespan already runs); polls fast."""
    async with served(app, monkeypatch) as url:
        yield url


async def seed(app: FastAPI, *events: tuple[str, list[int]]) -> list[int]:
    """Record events (type, operator ids) as ``core.events.publish.record`` does."""
    async with app.state.sessions() as session:
        rows = [
            Event(type=kind, operator_ids=operators, data={"n": i})
            for i, (kind, operators) in enumerate(events)
        ]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


async def read(
    base_url: str,
    key: str,
    count: int,
    path: str = "/v1/events",
    opened: Callable[[], Awaitable[object]] | None = None,
    received: Callable[[Sse], Awaitable[object]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[list[Sse], list[str]]:
    """Open the stream (then call ``opened``), take ``count`` events (calling ``received``
    with each), and leave; also returns the comment lines."""
    events: list[Sse] = []
    comments: list[str] = []
    fields: dict[str, str] = {}
    async with (
        asyncio.timeout(10),
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http,
        http.stream("GET", path, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        if opened is not None:
            await opened()
        async for line in response.aiter_lines():
            if line.startswith(":"):
                comments.append(line)
            elif line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "data" in fields:
                events.append(Sse(int(fields["id"]), fields["event"], json.loads(fields["data"])))
                fields = {}
                if received is not None:
                    await received(events[-1])
                if len(events) == count:
                    break
            else:
                fields = {}  # the retry: line
    return events, comments


async def operator_with_key(admin: httpx.AsyncClient, name: str) -> tuple[int, str]:
    operator_id = (await admin.post("/v1/operators", json={"name": name})).json()["id"]
    issued = await admin.post("/v1/api-keys", json={"role": "operator", "operator_id": operator_id})
    assert issued.status_code == 201, issued.text
    return operator_id, issued.json()["key"]


async def test_an_operator_gets_its_own_events_and_resumes_after_the_last(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str
):
    ann, ann_key = await operator_with_key(admin, "Ann")
    bob, _ = await operator_with_key(admin, "Bob")
    ids = await seed(
        app,
        ("dialog.offered", [ann]),
        ("dialog.offered", [bob]),
        ("message.created", [ann, bob]),
        ("dialog.closed", []),
        ("dialog.accepted", [ann]),
    )
    start = f"/v1/events?after={ids[0] - 1}"
    got, _ = await read(base_url, ann_key, 3, start)
    assert [(e.id, e.event) for e in got] == [
        (ids[0], "dialog.offered"),
        (ids[2], "message.created"),
        (ids[4], "dialog.accepted"),
    ]
    first = got[0].data
    assert (first["id"], first["type"], first["data"]) == (ids[0], "dialog.offered", {"n": 0})
    assert first["created_at"].endswith("+00:00")

    # A reconnecting EventSource names the last id it got; the header beats ?after=.
    resumed, _ = await read(base_url, ann_key, 2, start, headers={"Last-Event-ID": str(ids[0])})
    assert [e.id for e in resumed] == [ids[2], ids[4]]
    as_admin, _ = await read(base_url, ADMIN_KEY, 3, start, headers={"Last-Event-ID": str(ids[1])})
    assert [e.id for e in as_admin] == ids[2:]  # all events, whoever they are for
    for_bob, _ = await read(base_url, ADMIN_KEY, 2, f"{start}&operator_id={bob}")
    assert [e.id for e in for_bob] == [ids[1], ids[2]]


async def test_without_a_position_the_stream_starts_with_the_next_event(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str
):
    ann, ann_key = await operator_with_key(admin, "Ann")
    await seed(app, ("dialog.offered", [ann]))  # before the stream: not sent
    later: list[int] = []

    async def record_more() -> None:  # the stream fixed its position before it answered
        later.extend(await seed(app, ("dialog.offered", [ann + 1]), ("dialog.accepted", [ann])))

    got, _ = await read(base_url, ann_key, 1, opened=record_more)
    assert [(e.id, e.event) for e in got] == [(later[1], "dialog.accepted")]


async def test_an_event_committed_after_a_later_one_is_still_sent(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str
):
    """PostgreSQL: ids are taken at insert and seen at commit, so they can show up out of
    order. (SQLite writers take turns: ids appear in order there.)"""
    async with app.state.sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite commits in id order")
    ann, ann_key = await operator_with_key(admin, "Ann")
    async with app.state.sessions() as slow:
        early = Event(type="dialog.offered", operator_ids=[ann])
        slow.add(early)
        await slow.flush()  # its id is taken; not committed yet
        (later,) = await seed(app, ("dialog.accepted", [ann]))
        assert later > early.id

        async def commit_the_early_one(event: Sse) -> None:
            if event.id == later:
                await slow.commit()

        got, _ = await read(
            base_url, ann_key, 2, f"/v1/events?after={early.id - 1}", received=commit_the_early_one
        )
    assert [e.id for e in got] == [later, early.id]


async def test_a_quiet_stream_sends_keep_alives_and_ends_for_the_client_to_come_back(
    admin: httpx.AsyncClient, base_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(stream, "KEEPALIVE_S", 0.1)
    monkeypatch.setattr(stream, "MAX_STREAM_S", 0.5)
    _, ann_key = await operator_with_key(admin, "Ann")
    got, comments = await read(base_url, ann_key, 1)  # ends with the stream, not by count
    assert got == []
    assert ": keep-alive" in comments


async def test_who_may_follow_whom(app: FastAPI, admin: httpx.AsyncClient):
    _, ann_key = await operator_with_key(admin, "Ann")
    bob, _ = await operator_with_key(admin, "Bob")
    bot_id = (await admin.post("/v1/bots", json={"name": "Helper"})).json()["id"]
    issued = await admin.post("/v1/api-keys", json={"role": "bot", "bot_id": bot_id})
    bot_key = issued.json()["key"]
    async with client_for(app, ann_key) as as_ann, client_for(app, bot_key) as as_bot:
        other = await as_ann.get(f"/v1/events?operator_id={bob}")
        assert other.status_code == 403
        assert other.headers["content-type"].startswith(PROBLEM_JSON)
        assert (await as_bot.get("/v1/events")).status_code == 403
        bad = await as_ann.get("/v1/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["Last-Event-ID"]
        assert (await as_ann.get("/v1/events?after=-1")).status_code == 422
    assert (await admin.get("/v1/events?operator_id=999999")).status_code == 404
    async with client_for(app, None) as anonymous:
        assert (await anonymous.get("/v1/events")).status_code == 401


async def test_open_streams_are_capped_per_key_and_a_closed_one_frees_its_place(
    make_app: Callable[..., Awaitable[FastAPI]], monkeypatch: pytest.MonkeyPatch
):
    app = await make_app(max_event_streams_per_key=2, max_event_streams=3)
    async with client_for(app, ADMIN_KEY) as admin:
        _, ann_key = await operator_with_key(admin, "Ann")
        _, bob_key = await operator_with_key(admin, "Bob")
    async with served(app, monkeypatch) as base_url:
        async with open_streams(base_url, ann_key, 2):
            third = await try_stream(base_url, ann_key)
            assert third.status_code == 429
            assert "this API key has 2 event streams open" in third.json()["detail"]
            assert third.headers["retry-after"]
            async with open_streams(base_url, bob_key, 1):
                full = await try_stream(base_url, bob_key)
                assert full.status_code == 429
                assert "on this server" in full.json()["detail"]
        await asyncio.sleep(0.2)  # the server sees the streams go
        async with open_streams(base_url, ann_key, 2):
            pass  # both places are free again


async def test_one_poller_serves_every_stream(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str
):
    _, ann_key = await operator_with_key(admin, "Ann")
    polls = count_event_queries(app)
    async with open_streams(base_url, ann_key, 1):
        await asyncio.sleep(1.0)
    alone = polls()
    async with open_streams(base_url, ann_key, 8):
        await asyncio.sleep(1.0)
    together = polls() - alone
    # 0.05 s polls: about 20 a second whether one stream is open or eight.
    assert alone >= 5
    assert together <= alone * 1.5 + 5, (alone, together)


def count_event_queries(app: FastAPI) -> Callable[[], int]:
    """A counter of the statements reading the events table, on the app's read engine."""
    engine = app.state.read_sessions.kw["bind"].sync_engine
    seen = [0]

    def note(*args: Any) -> None:
        statement = args[2]
        if "FROM events" in statement:
            seen[0] += 1

    sqlalchemy.event.listen(engine, "before_cursor_execute", note)
    return lambda: seen[0]


async def try_stream(base_url: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url) as http:
        response = await http.get("/v1/events", headers={"Authorization": f"Bearer {key}"})
    return response


@asynccontextmanager
async def open_streams(base_url: str, key: str, count: int) -> AsyncIterator[None]:
    """``count`` streams of ``key``, open (answered 200) until the block ends."""
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"})
        )
        for _ in range(count):
            response = await stack.enter_async_context(http.stream("GET", "/v1/events"))
            assert response.status_code == 200
        yield


@asynccontextmanager
async def served(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """``app`` (whose lifespan already runs) on a local port; its event feed polls fast.

    The socket listens before the server starts, so early connections wait in its backlog.
    """
    monkeypatch.setattr(event_feed, "POLL_S", 0.05)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        server.should_exit = True
        # Streams end when their clients leave; one left open would hold this up.
        async with asyncio.timeout(5):
            await serving
