"""The web chat widget in a real browser (Playwright driving Debian's Chromium) on the demo
page, against the running system: a visitor writes, the operator (through the API) types,
replies, loses the visitor to a network outage and replies twice meanwhile, closes; the
visitor sees each reply once and in order, keeps the conversation across a reload, rates
with the like button; on a phone-sized screen the input stays in view; a page that signs its
customer in switches the chat to theirs. And the operator console beside it.

The screenshots it takes are the ones in docs/ (``OPENLINES_SCREENSHOTS=docs`` writes them
there; otherwise into the test's temporary folder).
"""

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Frame, Page, async_playwright, expect
from temporalio.testing import WorkflowEnvironment

from channels.webchat.visitors import identity_hash
from core import local_http
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import running_worker

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not os.environ.get("OPENLINES_TEST_REQUIRE_BROWSER"),
    reason=f"no browser at {CHROMIUM} (apt-get install chromium)",
)


@dataclass
class Site:
    app: FastAPI
    admin: httpx.AsyncClient
    url: str
    channel_id: int
    ann: int
    secret: str  # the web chat channel's: a site signs its visitors' identities with it

    async def act(self, dialog_id: int, action: str, **body: Any) -> Any:
        """The admin acts for Ann (typing needs no name: it is the dialog's operator's)."""
        if action != "typing":
            body["operator_id"] = self.ann
        answer = await self.admin.post(f"/v1/dialogs/{dialog_id}/{action}", json=body)
        assert answer.status_code in (200, 204), answer.text
        return answer.json() if answer.status_code == 200 else None

    async def dialog_when(self, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        async with asyncio.timeout(15):
            while True:
                items = (await self.admin.get("/v1/dialogs")).json()["items"]
                found: list[dict[str, Any]] = [d for d in items if check(d)]
                if found:
                    return found[0]
                await asyncio.sleep(0.1)


@pytest.fixture
async def site(
    make_app: Callable[..., Awaitable[FastAPI]], temporal: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[Site]:
    """The system served on a local port, with a line (Ann, online) and a web chat."""
    bound = local_http.bound_socket("127.0.0.1", 0)
    url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    app = await make_app(task_queue=task_queue, widget_demo=True, public_url=url)
    app.state.temporal = temporal.client
    async with (
        local_http.serving(app, bound, grace_s=10),
        running_worker(app, temporal, task_queue),
        client_for(app, ADMIN_KEY) as admin,
    ):
        ann = (await admin.post("/v1/operators", json={"name": "Ann"})).json()["id"]
        await admin.put(f"/v1/operators/{ann}/presence", json={"status": "online"})
        queue = {"members": [{"type": "operator", "id": ann}]}
        line = (await admin.post("/v1/lines", json={"name": "Demo shop", "queue": queue})).json()
        config = {"allowed_origins": [url], "colour": "#0b7a75"}
        created = await admin.post(
            f"/v1/lines/{line['id']}/channels", json={"type": "webchat", "config": config}
        )
        assert created.status_code == 201, created.text
        yield Site(app, admin, url, created.json()["id"], ann, created.json()["secret"])


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OPENLINES_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def opened_chat(page: Page, site: Site) -> Frame:
    """The demo page with the chat opened; the chat's frame."""
    await page.goto(f"{site.url}/widget/demo/{site.channel_id}")
    await page.click("button[data-openlines=open]")
    handle = await page.wait_for_selector("iframe[data-openlines=chat]", state="visible")
    assert handle is not None
    frame = await handle.content_frame()
    assert frame is not None
    await expect(frame.locator("#title")).to_have_text("Demo shop")
    return frame


async def write(frame: Frame, text: str) -> None:
    await frame.fill("#text", text)
    await frame.press("#text", "Enter")


async def test_a_visitor_chats_with_an_operator_through_outages_and_reloads(
    site: Site, browser: Browser, screenshots: Path
):
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await context.new_page()
    frame = await opened_chat(page, site)
    messages = frame.locator("#messages .message")

    await write(frame, "Hello, where is my order?")
    await expect(messages.last).to_have_text("Hello, where is my order?")
    dialog = await site.dialog_when(lambda d: d["offered_to"] == [site.ann])
    await site.act(dialog["id"], "accept")
    # The welcome text came through the stream: the widget follows the dialog now. (Typing
    # signals repeat while one types; one sent before that is not waited for.)
    await expect(frame.locator(".message.system").first).to_contain_text("Hello!")
    await site.act(dialog["id"], "typing", text="Let me check")
    await expect(frame.locator("#typing")).to_contain_text("Ann is typing")
    await site.act(dialog["id"], "messages", text="It ships today.")
    await expect(frame.locator(".message.operator").last).to_contain_text("It ships today.")
    await page.screenshot(path=screenshots / "widget-desktop.png")

    await context.set_offline(True)
    await expect(frame.locator("#status")).not_to_be_empty()
    await site.act(dialog["id"], "messages", text="First while you were away")
    await site.act(dialog["id"], "messages", text="Second while you were away")
    await asyncio.sleep(10)  # the outage
    await context.set_offline(False)
    operator_texts = frame.locator(".message.operator")
    await expect(operator_texts).to_have_count(3)
    assert [await t.text_content() for t in await operator_texts.all()] == [
        "AnnIt ships today.",
        "AnnFirst while you were away",
        "AnnSecond while you were away",
    ]

    await page.reload()
    frame = await opened_chat(page, site)
    await expect(frame.locator(".message.operator")).to_have_count(3)  # the same conversation
    await expect(frame.locator(".message.client")).to_have_text(["Hello, where is my order?"])

    await site.act(dialog["id"], "close")
    like = frame.get_by_role("button", name="👍")
    await like.click()
    await expect(frame.locator(".message.system").last).to_have_text("Thank you for your rating!")
    rated = await site.dialog_when(lambda d: d["id"] == dialog["id"] and d["rating"]["client"])
    assert rated["rating"]["client"] == "like"
    await context.close()


async def test_on_a_phone_the_chat_fills_the_screen_and_the_input_stays_in_view(
    site: Site, browser: Browser, screenshots: Path
):
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    frame = await opened_chat(page, site)
    await frame.click("#text")
    await write(frame, "Hi from my phone")
    await expect(frame.locator(".message.client")).to_have_text(["Hi from my phone"])
    await expect(frame.locator(".message.system").first).to_contain_text("Hello!")

    chat = await page.locator("iframe[data-openlines=chat]").bounding_box()
    box = await frame.locator("#text").bounding_box()
    font_size = await frame.eval_on_selector("#text", "e => getComputedStyle(e).fontSize")
    assert chat is not None and box is not None
    assert (chat["x"], chat["y"], chat["width"], chat["height"]) == (0, 0, 390, 844)
    assert 0 <= box["y"] and box["y"] + box["height"] <= 844  # the input is on screen
    assert float(font_size.removesuffix("px")) >= 16  # no zoom on focus
    await page.screenshot(path=screenshots / "widget-phone.png")
    await context.close()


async def test_an_operator_answers_from_the_console_with_a_quick_answer(
    site: Site, browser: Browser, screenshots: Path
):
    admin = site.admin
    list_id = (await admin.post("/v1/quick-answer-lists", json={"name": "Shop"})).json()["id"]
    greeting = {
        "title": "Greeting",
        "code": "hello",
        "text": "Hello #CLIENT_NAME#, I am #OPERATOR_NAME#.",
    }
    await admin.post(f"/v1/quick-answer-lists/{list_id}/answers", json=greeting)
    line_id = (await admin.get(f"/v1/channels/{site.channel_id}")).json()["line_id"]
    settings = {"quick_answers_list_id": list_id, "rating": {"close_on_rating": True}}
    await admin.patch(f"/v1/lines/{line_id}", json=settings)
    key = (
        await admin.post("/v1/api-keys", json={"role": "operator", "operator_id": site.ann})
    ).json()["key"]

    console_context = await browser.new_context(viewport={"width": 1280, "height": 800})
    console = await console_context.new_page()
    await console.goto(f"{site.url}/console")
    await console.fill("#key", key)
    await console.click("#signin button[type=submit]")
    await expect(console.locator("#me")).to_have_text("Ann (operator)")

    visitor_context = await browser.new_context(viewport={"width": 1280, "height": 800})
    visitor = await visitor_context.new_page()
    frame = await opened_chat(visitor, site)
    await write(frame, "Is it in stock?")
    offered = await site.dialog_when(lambda d: d["offered_to"] == [site.ann])
    # Offered now: the console shows it within a second, through its event stream.
    await expect(console.locator("#offered li")).to_have_count(1, timeout=1000)

    await console.click("#offered li")
    await expect(console.locator("#history .msg.client")).to_have_text(["Is it in stock?"])
    await console.click("#actions button[data-action=accept]")
    await expect(console.locator("#mine li")).to_have_count(1)
    await console.fill("#reply-text", "")
    await console.type("#reply-text", "Let me look")
    await expect(frame.locator("#typing")).to_contain_text("Ann is typing")
    await console.fill("#reply-text", "")
    await console.type("#reply-text", "/hel")
    await expect(console.locator("#quick li")).to_have_count(1)
    await console.press("#reply-text", "Enter")  # takes the quick answer into the box
    await expect(console.locator("#reply-text")).to_have_value(
        "Hello , I am Ann.".replace(" ,", ",")
    )
    await console.press("#reply-text", "Enter")  # sends it
    await expect(frame.locator(".message.operator")).to_have_count(1)
    await expect(frame.locator(".message.operator")).to_contain_text("I am Ann.")
    await expect(console.locator("#history .msg.operator")).to_have_count(1)
    await console.screenshot(path=screenshots / "console-desktop.png")

    await console.click("#actions button[data-action=close]")
    await frame.get_by_role("button", name="👍").click()
    await expect(frame.locator(".message.system").last).to_have_text("Thank you for your rating!")
    closed = await site.dialog_when(lambda d: d["id"] == offered["id"] and d["status"] == "closed")
    assert closed["rating"]["client"] == "like"  # and the rating closed it (close_on_rating)
    await expect(frame.locator("#status")).to_contain_text("The dialog is closed")
    await expect(console.locator("#mine li")).to_have_count(0)

    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = await phone.new_page()
    await small.goto(f"{site.url}/console")
    await small.fill("#key", key)
    await small.click("#signin button[type=submit]")
    await expect(small.locator("#me")).to_have_text("Ann (operator)")
    await small.screenshot(path=screenshots / "console-phone.png")
    for context in (console_context, visitor_context, phone):
        await context.close()


async def test_signing_in_on_the_page_switches_the_chat_to_that_customer(
    site: Site, browser: Browser
):
    who = {
        "identifier": "customer-42",
        "identifier_hash": identity_hash(site.secret, "customer-42"),
    }
    laptop_context, phone_context = await browser.new_context(), await browser.new_context()
    laptop, phone = await laptop_context.new_page(), await phone_context.new_page()
    on_laptop = await opened_chat(laptop, site)
    await write(on_laptop, "Asked before signing in")
    await expect(on_laptop.locator(".message.client")).to_have_count(1)

    await laptop.evaluate("who => window.openlinesIdentify(who)", who)
    await expect(on_laptop.locator(".message.client")).to_have_count(0)  # customer 42's chat
    await write(on_laptop, "Signed in now")
    await expect(on_laptop.locator(".message.client")).to_have_text(["Signed in now"])

    on_phone = await opened_chat(phone, site)
    await phone.evaluate("who => window.openlinesIdentify(who)", who)
    await expect(on_phone.locator(".message.client")).to_have_text(["Signed in now"])

    await laptop.evaluate("() => window.openlinesIdentify(null)")  # signed out
    await expect(on_laptop.locator(".message.client")).to_have_count(0)
    for context in (laptop_context, phone_context):
        await context.close()
