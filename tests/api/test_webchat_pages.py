"""What browsers load for the web chat: the loader script, the config only the channel's
allowed origins may read, the frame only they may embed, and the dev demo page."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_webchat import CONFIG, connect, ok
from tests.conftest import ADMIN_KEY, client_for

SHOP = CONFIG["allowed_origins"][0]


def widget(channel: dict[str, Any]) -> str:
    return f"/widget/{channel['id']}-{channel['config']['code']}"


async def test_the_loader_is_served_for_a_known_code_only(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin)
    async with client_for(app, None) as browser:
        script = await browser.get(f"{widget(channel)}.js")
        unknown = await browser.get(f"/widget/{channel['id']}-nope.js")

    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "currentScript" in script.text
    assert unknown.status_code == 404


async def test_only_allowed_origins_may_read_the_config(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin)
    async with client_for(app, None) as browser:
        from_shop = await browser.get(f"{widget(channel)}/config", headers={"Origin": SHOP})
        elsewhere = await browser.get(
            f"{widget(channel)}/config", headers={"Origin": "https://evil.example"}
        )

    assert from_shop.headers["access-control-allow-origin"] == SHOP
    assert "access-control-allow-origin" not in elsewhere.headers
    assert ok(from_shop)["show"] is True
    assert (ok(from_shop)["title"], ok(from_shop)["colour"]) == ("Shop", "#1f6feb")


async def test_a_widget_for_working_hours_only_hides_outside_them(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin, {**CONFIG, "working_hours_only": True, "title": "Help"})
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    worktime = {"enabled": True, "days_off": every_day}
    ok(await admin.patch(f"/v1/lines/{channel['line_id']}", json={"worktime": worktime}))
    async with client_for(app, None) as browser:
        config = ok(await browser.get(f"{widget(channel)}/config", headers={"Origin": SHOP}))

    assert (config["show"], config["title"]) == (False, "Help")


async def test_only_allowed_origins_may_frame_the_chat(app: FastAPI, admin: AsyncClient):
    channel = await connect(admin)
    async with client_for(app, None) as browser:
        frame = await browser.get(f"{widget(channel)}/frame")
        script = await browser.get("/widget/static/frame.js")

    assert frame.headers["content-security-policy"] == f"frame-ancestors {SHOP}"
    assert frame.headers["content-type"].startswith("text/html")
    assert script.status_code == 200 and "visibilitychange" in script.text


async def test_the_demo_page_is_served_only_where_turned_on(make_app: Any):
    plain, demo = await make_app(), await make_app(widget_demo=True, public_url="http://x.test")
    async with client_for(plain, ADMIN_KEY) as admin:
        channel = await connect(admin)
    async with client_for(plain, None) as browser:
        off = await browser.get(f"/widget/demo/{channel['id']}")
    async with client_for(demo, None) as browser:
        on = await browser.get(f"/widget/demo/{channel['id']}")
        frame = await browser.get(f"{widget(channel)}/frame")

    assert off.status_code == 404
    assert f'<script src="http://x.test{widget(channel)}.js" async></script>' in on.text
    assert frame.headers["content-security-policy"] == f"frame-ancestors {SHOP} 'self'"
