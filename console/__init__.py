"""The operator console: a page at ``/console`` served by the API, plain HTML and JavaScript
(no build step, no CDN: it works offline), talking to the API with the operator's key.

It lists the dialogs offered to the operator and theirs (and, for supervisors, the lines'
waiting queues), live through ``/v1/events``; shows a dialog's history, the client's CRM card
and what the client is typing; and answers, accepts, skips, transfers, pins, closes and marks
spam. In the reply box ``/`` searches the line's quick answers.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=STATIC)


@router.get("/console")
async def console() -> FileResponse:
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)
