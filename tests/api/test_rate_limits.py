"""Past a rate limit the answer is 429 problem details with Retry-After: per API key, per
channel, and per client IP on the routes that need no key."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import Response

from api.rate_limit import MAX_KEYS, RateLimiter
from tests.api.test_channel_move import add_channel, create_line
from tests.conftest import ADMIN_KEY, client_for


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.wait("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("a") == pytest.approx(0.5)
    assert limiter.wait("b") == 0  # every key has its own bucket
    clock.now += 0.5
    assert limiter.wait("a") == 0
    assert limiter.wait("a") > 0


def test_no_limit_at_rate_zero_and_memory_is_bounded() -> None:
    assert all(RateLimiter(rate=0, burst=1).wait("a") == 0 for _ in range(1000))
    limiter = RateLimiter(rate=1, burst=1)
    for n in range(MAX_KEYS + 500):
        limiter.wait(f"ip-{n}")
    assert len(limiter._buckets) == MAX_KEYS


def too_many(response: Response) -> str:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    detail: str = response.json()["detail"]
    return detail


@pytest.fixture
async def tight(make_app: Callable[..., Any]) -> FastAPI:
    """An app whose limits a test reaches in a few requests (rates too slow to refill)."""
    app: FastAPI = await make_app(
        rate_limit_per_key=0.01,
        rate_limit_burst_per_key=5,
        rate_limit_per_ip=0.01,
        rate_limit_burst_per_ip=4,
        rate_limit_per_channel=0.01,
        rate_limit_burst_per_channel=2,
    )
    return app


async def test_an_api_key_past_its_burst_gets_429(tight: FastAPI) -> None:
    async with client_for(tight, ADMIN_KEY) as admin:
        answers = [await admin.get("/v1/lines") for _ in range(6)]
    assert [a.status_code for a in answers[:5]] == [200] * 5
    assert "this API key" in too_many(answers[5])


async def test_a_channel_and_a_client_address_have_their_own_limits(tight: FastAPI) -> None:
    async with client_for(tight, ADMIN_KEY) as admin:
        channel = await add_channel(admin, await create_line(admin))
    path = f"/v1/channels/{channel['id']}/messages"

    def body(n: int) -> dict[str, Any]:
        return {"chat": {"external_id": "c"}, "message": {"external_id": f"m{n}", "text": "Hi"}}

    async with client_for(tight, channel["secret"]) as as_channel:
        by_channel = [await as_channel.post(path, json=body(n)) for n in range(3)]
        by_address = [await as_channel.post(path, json=body(n)) for n in range(3, 5)]

    assert [a.status_code for a in by_channel[:2]] == [202, 202]
    assert "this channel" in too_many(by_channel[2])
    assert by_address[0].status_code == 429  # the channel's bucket is still empty
    assert "this client address" in too_many(by_address[1])  # 5th request from this address
