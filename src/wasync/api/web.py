"""The web UI: server-rendered page shells plus a little JavaScript, no CDN.

The pages hold no data: their scripts call the API with the key the login page
keeps in sessionStorage. So the shells, the login page and the static files are
served without the key, and everything they show comes through authenticated calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from wasync import __version__
from wasync.store.sessions import InvalidSessionName, validate_session_name

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

# The UI loads only its own scripts and styles; media and avatars come as blob: URLs.
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, {"version": __version__, **context})
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/sessions")


@router.get("/ui")
@router.get("/ui/")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/sessions")


@router.get("/ui/login", response_class=HTMLResponse)
async def login_page(request: Request) -> HTMLResponse:
    return _page(request, "login.html", page="login", title="Sign in")


@router.get("/ui/sessions", response_class=HTMLResponse)
async def sessions_page(request: Request) -> HTMLResponse:
    return _page(request, "sessions.html", page="sessions", title="Sessions")


def _session_page(
    request: Request, session: str, template: str, page: str, title: str, **context: Any
) -> HTMLResponse:
    # An unknown session is told by the page's first API call: the shell is served
    # without the key, so it must not say which sessions exist.
    try:
        validate_session_name(session)
    except InvalidSessionName:
        return not_found(request, "No session has that name.")
    return _page(request, template, page=page, title=title, session=session, **context)


@router.get("/ui/sessions/{session}", response_class=HTMLResponse)
async def chats_page(request: Request, session: str) -> HTMLResponse:
    return _session_page(request, session, "chats.html", "chats", session)


@router.get("/ui/sessions/{session}/chats/{jid}", response_class=HTMLResponse)
async def chat_page(request: Request, session: str, jid: str) -> HTMLResponse:
    """A chat's own address: the chats page, opening that chat (reload keeps it)."""
    return _session_page(request, session, "chats.html", "chats", session, jid=jid)


@router.get("/ui/sessions/{session}/sync", response_class=HTMLResponse)
async def sync_page(request: Request, session: str) -> HTMLResponse:
    return _session_page(request, session, "sync.html", "sync", f"{session} · sync")


@router.get("/ui/queues", response_class=HTMLResponse)
async def queues_page(request: Request) -> HTMLResponse:
    return _page(request, "queues.html", page="queues", title="Queues")


# Registered after the static files: any other /ui/ address is a page that does not
# exist, answered as a page (a person followed a link), not as the API's JSON.
fallback = APIRouter(include_in_schema=False)


@fallback.get("/ui/{rest:path}", response_class=HTMLResponse)
async def not_found_page(request: Request, rest: str) -> HTMLResponse:
    return not_found(request)


def not_found(request: Request, what: str = "This page does not exist.") -> HTMLResponse:
    response = _page(request, "not_found.html", page="not_found", title="Not found", what=what)
    response.status_code = 404
    return response


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=WEB_DIR / "static"), name="ui-static")
    app.include_router(fallback)
