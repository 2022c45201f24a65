"""The worker as production runs it (``worker.serve`` with ``OPENLINES_WORKER_PORT``), doing
the work of dialogs that come through the API: its ``/metrics`` holds the Temporal SDK's
metrics and openlines' own, which move as the dialogs flow; ``/healthz`` and ``/readyz``
answer while it serves, and it stops cleanly when told.

And the Grafana dashboard (``deploy/grafana/openlines-dashboard.json``) asks only for metrics
that a real scrape of the worker and the API has, rating counters and taking the max of the
database's gauges; its panels are evaluated over scrapes of this run and drawn
(``tests/dashboard_preview.py``). ``OPENLINES_SCREENSHOTS=docs`` screenshots that preview into
``docs/dashboard.png`` with Chromium.

In this test the API and the worker share one process, so both ``/metrics`` hold the same
openlines counters (in production each process counts its own work).
"""

import asyncio
import html
import json
import logging
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

import worker
from core import metrics
from core.config import Settings
from core.local_http import free_port
from tests import dashboard_preview as preview
from tests.channels.receiver import Receiver
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System
from tests.integration.test_webhook_channel import client_writes, message_when, received

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "openlines-dashboard.json"
CHROMIUM = "/usr/bin/chromium"
METRIC_NAME = re.compile(r"\b(?:openlines|temporal)_\w+")
# How a sample name in PromQL ends for each type of family it may belong to.
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum"),
    "gauge": ("",),
}


@dataclass
class Deployed:
    """The API (in process) and the worker serving its port, as deployed."""

    system: System
    worker: httpx.AsyncClient  # to the worker's port
    anonymous: httpx.AsyncClient  # to the API, without a key (as Prometheus scrapes)
    stop: asyncio.Event
    serving: "asyncio.Task[None]"

    async def worker_metrics(self) -> str:
        answer = await self.worker.get("/metrics")
        assert answer.status_code == 200, answer.text
        return answer.text

    async def api_metrics(self) -> str:
        answer = await self.anonymous.get("/metrics")
        assert answer.status_code == 200, answer.text
        return answer.text

    async def stopped(self) -> None:
        """Set the stop event; the worker drains and ``serve`` returns."""
        self.stop.set()
        await asyncio.wait_for(asyncio.shield(self.serving), 20)


@pytest.fixture
async def deployed(
    make_app: Callable[..., Awaitable[FastAPI]], temporal: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[Deployed]:
    app = await make_app(task_queue=task_queue)
    app.state.temporal = temporal.client  # the API's; the worker connects on its own
    port = free_port()
    settings = Settings(
        database_url=app.state.settings.resolved_database_url,
        temporal_address=temporal.client.service_client.config.target_host,
        task_queue=task_queue,
        worker_port=port,
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.serve(settings, stop))
    async with (
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as to_worker,
        client_for(app, ADMIN_KEY) as admin,
        client_for(app, None) as anonymous,
    ):
        deployed = Deployed(
            System(app, admin, temporal, task_queue), to_worker, anonymous, stop, serving
        )
        try:
            await until_ready(deployed)
            yield deployed
        finally:
            await deployed.stopped()


async def until_ready(deployed: Deployed, timeout_s: float = 20) -> None:
    """Wait for ``/readyz`` to answer 200 (the worker polls its task queue)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if deployed.serving.done():  # it failed to start: say why
                deployed.serving.result()
                raise AssertionError("the worker stopped before it was ready")
            try:
                if (await deployed.worker.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet
                pass
            await asyncio.sleep(0.05)


def families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples of that name whose labels include ``labels`` (0: none)."""
    return sum(
        found.value
        for family in text_string_to_metric_families(text)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )


def family_of(name: str, found: dict[str, Metric]) -> Metric | None:
    """The family a PromQL sample name belongs to: a gauge of that name, or a counter,
    histogram or summary whose name it is with that type's suffix."""
    for type_, suffixes in SUFFIXES.items():
        for suffix in suffixes:
            if name.endswith(suffix) and (family := found.get(name.removesuffix(suffix))):
                if family.type == type_:
                    return family
    return None


async def scrape_until(
    deployed: Deployed, check: Callable[[str], bool], timeout_s: float = 10
) -> str:
    """The worker's metrics once ``check`` holds of them (or the last, when it never does:
    the assertions on it then say what is wrong). Counters move just after the database
    says the work is done."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        text = await deployed.worker_metrics()
        if check(text) or asyncio.get_running_loop().time() > deadline:
            return text
        await asyncio.sleep(0.05)


async def webhook_line(
    system: System, receiver: Receiver, members: list[int]
) -> tuple[int, int, str]:
    """A line with a webhook channel POSTing to the receiver: (line, channel, secret)."""
    line_id, _, _ = await system.line(members, {"name": "Acme"})
    created = await system.admin.post(
        f"/v1/lines/{line_id}/channels", json={"type": "webhook", "config": {"url": receiver.url}}
    )
    assert created.status_code == 201, created.text
    return line_id, created.json()["id"], created.json()["secret"]


async def act(system: System, dialog_id: int, action: str, **body: Any) -> None:
    answer = await system.admin.post(f"/v1/dialogs/{dialog_id}/{action}", json=body)
    assert answer.status_code == 200, answer.text


async def test_the_worker_serves_the_sdks_metrics_and_ours(
    deployed: Deployed, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    system = deployed.system
    assert (await deployed.worker.get("/healthz")).status_code == 200
    assert (await deployed.worker.get("/readyz")).status_code == 200
    before = await deployed.worker_metrics()
    ann = await system.operator("Ann")
    bob = await system.operator("Bob", online=False)
    served, channel, secret = await webhook_line(system, receiver, [ann])
    unserved, api_channel, api_secret = await system.line([bob])

    offered = []
    for chat in ("chat-1", "chat-2"):
        written = await client_writes(system, channel, secret, chat, "m-1")
        assert written.status_code == 202, written.text
        offered.append(written.json()["dialog_id"])
    waiting = await system.client_writes(api_channel, api_secret, "chat-3", "m-1")
    assert waiting.status_code == 202, waiting.text
    for dialog_id in offered:
        await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    await act(system, offered[0], "accept", operator_id=ann)
    await act(system, offered[0], "messages", operator_id=ann, text="Hi Bob!")
    # The two welcomes and the reply went out through the webhook channel.
    for body in await received(receiver, 3):
        await message_when(system, body["message_id"], "sent")
    await metrics.sample(system.app.state.sessions)  # as the worker does every 15 s

    def sent(text: str) -> float:
        return value(text, "openlines_outbound_sends_total", channel="webhook", status="sent")

    def sends_done(text: str) -> float:  # the SDK's count of finished send activities
        return value(
            text,
            "temporal_activity_execution_latency_count",
            activity_type="send",
            task_queue=system.task_queue,
        )

    def all_counted(text: str) -> bool:
        sends = len(receiver.requests)
        return sent(text) - sent(before) >= sends and sends_done(text) >= sends

    after = await scrape_until(deployed, all_counted)

    def grew(sample: str, **labels: str) -> float:
        return value(after, sample, **labels) - value(before, sample, **labels)

    assert grew("openlines_events_total", type="dialog.offered") == 2  # Bob is offline
    assert grew("openlines_events_total", type="dialog.accepted") == 1
    assert grew("openlines_relay_deliveries_total", kind="message") == 3  # the clients' messages
    assert sent(after) - sent(before) == len(receiver.requests) == 3
    assert value(after, "openlines_queue_length", line=str(unserved)) == 1
    assert value(after, "openlines_queue_length", line=str(served)) == 1  # offered, not taken
    assert value(after, "openlines_queue_oldest_wait_seconds", line=str(unserved)) > 0
    # The SDK's metrics, from this worker's runtime: our task queue's workflows and activities.
    ours = {"task_queue": system.task_queue}
    dialogs = {**ours, "workflow_type": "DialogWorkflow"}
    # Each dialog entered its queue in a local activity; each message went out in an activity.
    entered = value(
        after, "temporal_local_activity_total_total", activity_type="enter_queue", **dialogs
    )
    assert entered == 3
    assert sends_done(after) == 3
    assert value(after, "temporal_workflow_task_execution_latency_count", **dialogs) > 0
    assert value(after, "temporal_workflow_task_schedule_to_start_latency_count", **ours) > 0
    assert value(after, "temporal_num_pollers", poller_type="workflow_task", **ours) > 0

    await deployed.stopped()
    assert deployed.serving.result() is None
    async with httpx.AsyncClient(base_url=deployed.worker.base_url) as fresh:
        with pytest.raises(httpx.ConnectError):  # the port closed with the worker
            await fresh.get("/healthz")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_the_dashboard_reads_only_scraped_metrics_and_its_preview_draws_them(
    deployed: Deployed, receiver: Receiver, tmp_path: Path
) -> None:
    system = deployed.system
    dashboard = json.loads(DASHBOARD.read_text())
    ann = await system.operator("Ann")
    bob = await system.operator("Bob", online=False)
    served, channel, secret = await webhook_line(system, receiver, [ann])
    unserved, api_channel, api_secret = await system.line([bob])
    scrapes: list[preview.Scrape] = []
    texts: list[tuple[str, str]] = []
    flowed = asyncio.Event()

    async def scrape_every_half_second() -> None:
        while True:
            await metrics.sample(system.app.state.sessions)  # the worker: every 15 s
            worker_text, api_text = await deployed.worker_metrics(), await deployed.api_metrics()
            texts.append((worker_text, api_text))
            at = asyncio.get_running_loop().time()
            scrapes.append(preview.parse_scrape(at, api_text, worker_text))
            if flowed.is_set():
                return
            await asyncio.sleep(0.5)

    scraping = asyncio.create_task(scrape_every_half_second())
    for n in range(6):
        written = await client_writes(system, channel, secret, f"chat-{n}", "m-1")
        dialog_id = written.json()["dialog_id"]
        if n % 3 == 0:
            await system.client_writes(api_channel, api_secret, f"waits-{n}", "m-1")
        await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
        await act(system, dialog_id, "accept", operator_id=ann)
        await act(system, dialog_id, "messages", operator_id=ann, text=f"Hello {n}")
        await asyncio.sleep(0.5)
    await received(receiver, 12)  # a welcome and a reply each
    await asyncio.sleep(2)
    flowed.set()
    await scraping
    worker_text, api_text = texts[-1]
    scraped = {"worker": families(worker_text), "API": families(api_text)}
    everything = scraped["API"] | scraped["worker"]

    # Every metric the dashboard reads is in a scrape, read the way its type wants.
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    variables = [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used: set[str] = set()
    for expr in expressions:
        tree = preview.parse(preview.substitute(expr, "2s"))
        names = set(METRIC_NAME.findall(expr))
        assert names == preview.metric_names(tree), expr
        for name in names:
            family = family_of(name, everything)
            assert family is not None, f"{name} ({expr}) is in no scrape"
            rated = name in preview.rated_names(tree)
            assert rated == (family.type != "gauge"), f"{name} is a {family.type}: {expr}"
            if name.startswith("openlines_") and family.type == "gauge":
                assert expr.startswith("max"), f"every worker samples {name} alike: {expr}"
        used |= names
    for definition in variables:
        for name in METRIC_NAME.findall(definition):
            assert family_of(name, everything) is not None, definition
    assert all(family_of(n, scraped["worker"]) for n in used if n.startswith("temporal_"))
    assert family_of("openlines_http_request_seconds_bucket", scraped["API"])

    # The preview evaluates each panel over the scrapes.
    panels = {p["title"]: p for p in dashboard["panels"] if p["type"] != "row"}
    lines = {"line": f"{served}|{unserved}"}  # this test's (gauges of earlier ones linger)
    drawn = {t: preview.panel_series(p, scrapes, "2s", lines) for t, p in panels.items()}
    waiting = {s.name: s.points[-1][1] for s in drawn["Dialogs waiting for an operator, per line"]}
    assert (
        waiting[f"line {unserved}"]
        == value(worker_text, "openlines_queue_length", line=str(unserved))
        == 2
    )
    # Each dialog was offered, then accepted: 0, or no series if no sample caught one waiting.
    assert waiting.get(f"line {served}", 0) == 0
    flow = {
        s.name: max(v for _, v in s.points) for s in drawn["Dialogs created, offers and accepts /s"]
    }
    assert flow["offers"] > 0 and flow["accepts"] > 0 and flow["created"] > 0
    sends = {s.name: s for s in drawn["Outbound sends/s by channel and status"]}
    assert max(v for _, v in sends["webhook sent"].points) > 0
    assert sends["webhook sent"].color == "#73bf69"  # the override's green
    routes = {s.name for s in drawn["API request latency by route (p50, p99)"]}
    assert "p99 /v1/channels/{channel_id}/messages" in routes
    assert set(waiting) == {f"line {served}", f"line {unserved}"}  # as $line chose
    page = preview.render(dashboard, scrapes, "2s", lines)
    for title in panels:
        assert html.escape(title) in page
    (tmp_path / "dashboard.html").write_text(page)

    if folder := os.environ.get("OPENLINES_SCREENSHOTS"):
        assert shutil.which(CHROMIUM), f"no browser at {CHROMIUM} for the screenshot"
        await screenshot(page, ROOT / folder / "dashboard.png")


async def screenshot(page: str, path: Path) -> None:
    """The preview in Chromium, the whole page (as the browser tests launch it)."""
    from playwright.async_api import async_playwright

    path.parent.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        tab = await browser.new_page(viewport={"width": 1600, "height": 900})
        await tab.set_content(page)
        await tab.screenshot(path=path, full_page=True)
        await browser.close()


def test_the_preview_evaluates_rates_sums_maxima_and_quantiles() -> None:
    def at(
        second: float, offered: tuple[int, int], buckets: tuple[int, int, int]
    ) -> preview.Scrape:
        text = (
            "# TYPE x_total counter\n"
            f'x_total{{line="1",kind="a"}} {offered[0]}\n'
            f'x_total{{line="2",kind="a"}} {offered[1]}\n'
            "# TYPE q gauge\n"
            'q{line="1"} 3\nq{line="2"} 5\n'
            "# TYPE h histogram\n"
            f'h_bucket{{le="0.1"}} {buckets[0]}\nh_bucket{{le="1.0"}} {buckets[1]}\n'
            f'h_bucket{{le="+Inf"}} {buckets[2]}\nh_count {buckets[2]}\nh_sum 1\n'
        )
        return preview.parse_scrape(second, text)

    scrapes = [at(0, (0, 0), (0, 0, 0)), at(1, (4, 10), (10, 30, 40)), at(2, (1, 12), (20, 60, 80))]

    def last(expr: str) -> dict[str, float]:
        tree = preview.parse(preview.substitute(expr, "5s", {"line": "1|2"}))
        found = preview.evaluate(tree, scrapes, len(scrapes) - 1)
        return {",".join(v for _, v in labels): round(x, 6) for labels, x in found.items()}

    # line 1 went 0, 4, 1 (a restart: +1 counted); line 2 went 0, 10, 12: over 2 s.
    assert last('sum by (line) (rate(x_total{line=~"$line"}[$__rate_interval]))') == {
        "1": 2.5,
        "2": 6.0,
    }
    assert last("sum(rate(x_total[$__rate_interval]))") == {"": 8.5}
    assert last('max(q{line!="2"})') == {"": 3.0}
    assert last("max by (line) (q)") == {"1": 3.0, "2": 5.0}
    # rate over 2 s: buckets 10, 30, 40 per second: the median (rank 20) is halfway into
    # (0.1, 1]; the 99th percentile (rank 39.6) lies in +Inf, so the top finite bound.
    assert last("histogram_quantile(0.5, sum by (le) (rate(h_bucket[5s])))") == {"": 0.55}
    assert last("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5s])))") == {"": 1.0}
    assert last("histogram_quantile(0.5, sum by (le) (rate(h_bucket[1.5s])))") == {"": 0.55}
    assert last("sum(rate(x_total[1s]))") == {}  # one scrape in (1 s, 2 s]: no rate yet
    for broken in ("sum by (line (x)", "rate(x_total)", "max(q) q", 'q{line~"1"}'):
        with pytest.raises(ValueError):
            preview.parse(broken)


def test_the_dashboard_is_laid_out_in_rows_on_a_prometheus_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["line"]["definition"] == "label_values(openlines_queue_length, line)"
    assert variables["line"]["includeAll"] and variables["line"]["allValue"] == ".*"
    panels = dashboard["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == [
        "Queue",
        "Latency",
        "Backlog",
        "Failures",
        "Flow",
    ]
    assert len({p["id"] for p in panels}) == len(panels)
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    for panel in (p for p in panels if p["type"] != "row"):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == source, panel["title"]
        assert panel["targets"] and all(t["datasource"] == source for t in panel["targets"])
        for target in panel["targets"]:  # each parses, with our variables only
            assert set(re.findall(r"\$(\w+)", target["expr"])) <= {"line", "__rate_interval"}
            preview.parse(preview.substitute(target["expr"], "1m"))
