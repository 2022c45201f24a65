"""What browsers load for the web chat: the script a site pastes, the chat's iframe, and
(for ``openlines dev``) a demo page; not part of the API schema.

* ``/widget/{code}.js``: the loader (``static/loader.js``), the same file for every channel.
* ``/widget/{code}/config``: whether and how to show the chat, readable (CORS) only by pages
  of the channel's ``allowed_origins``; with ``working_hours_only`` ``show`` is false outside
  the line's working hours.
* ``/widget/{code}/frame``: the chat, which only those origins may frame
  (``Content-Security-Policy: frame-ancestors``).
* ``/widget/static/...``: the frame's script and styles.
* ``/widget/demo/{channel_id}``: a sample shop with the snippet, when ``widget_demo`` is on.
"""

from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from api.deps import AppSettings, ReadSession, get_or_none
from api.errors import ApiError
from channels.webchat import snippet
from channels.webchat.endpoints import webchat_of, widget_line
from core.line_settings import LineSettings
from core.models import Channel, Line
from core.worktime import is_working_time

STATIC = Path(__file__).parent / "static"

router = APIRouter(prefix="/widget", include_in_schema=False)
static = StaticFiles(directory=STATIC)


@router.get("/{code}.js")
async def loader(code: str, request: Request, session: ReadSession) -> Response:
    await webchat_of(session, request, code)
    headers = {"Cache-Control": "public, max-age=300"}
    return FileResponse(STATIC / "loader.js", media_type="text/javascript", headers=headers)


@router.get("/{code}/config")
async def config(code: str, request: Request, session: ReadSession) -> JSONResponse:
    channel = await webchat_of(session, request, code)
    line = await session.get(Line, channel.line_id)
    assert line is not None
    shown = await widget_line(session, channel)
    show = True
    if channel.config["working_hours_only"]:
        show = is_working_time(
            LineSettings.model_validate(line.settings).worktime, datetime.now(UTC)
        )
    body = {**shown.model_dump(), "show": show}
    headers = {"Vary": "Origin", "Cache-Control": "no-store"}
    origin = request.headers.get("origin", "")
    if origin in channel.config["allowed_origins"]:
        headers["Access-Control-Allow-Origin"] = origin
    return JSONResponse(body, headers=headers)


@router.get("/{code}/frame")
async def frame(
    code: str, request: Request, session: ReadSession, settings: AppSettings
) -> FileResponse:
    channel = await webchat_of(session, request, code)
    ancestors = " ".join(channel.config["allowed_origins"])
    if settings.widget_demo:
        ancestors += " 'self'"  # the demo page is served from here
    headers = {
        "Content-Security-Policy": f"frame-ancestors {ancestors}",
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    return FileResponse(STATIC / "frame.html", media_type="text/html", headers=headers)


@router.get("/demo/{channel_id}")
async def demo(channel_id: int, session: ReadSession, settings: AppSettings) -> HTMLResponse:
    """A sample site with the channel's snippet (``openlines dev`` turns it on)."""
    channel = await get_or_none(session, Channel, channel_id)
    if not settings.widget_demo or channel is None or channel.type != "webchat":
        raise ApiError(404, "no web chat demo here")
    tag = snippet(channel.id, channel.config, settings)
    page = (STATIC / "demo.html").read_text().replace("<!-- snippet -->", tag)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
