"""The viewer's HTTP server (aiohttp): a static page plus a small JSON API over the given run folders.

The page and its two assets are fixed routes read from the package; the only files served are the images
in the run folders' ``images/`` (named by content hash, checked against that pattern and that folder), so
nothing outside the run folders (and the gold file) is served. Every response carries a strict
Content-Security-Policy; the page renders model text with ``textContent`` only. The relabel POST needs the
per-session token embedded in the page, a JSON body, and an Origin (when sent) equal to the server's own; every
request must name the server's own host and port in ``Host`` (against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Awaitable, Callable
from importlib.resources import files

from aiohttp import web

from overrefusal.errors import BadInputError
from overrefusal.images import EXTENSIONS
from overrefusal.viewer.data import ViewerData
from overrefusal.viewer.gold import GOLD_LABELS

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TOKEN_HEADER = "X-Overrefusal-Token"
MEDIA_BY_EXTENSION = {extension: media for media, extension in EXTENSIONS.items()}
_STATIC = {"/app.js": ("app.js", "text/javascript"), "/app.css": ("app.css", "text/css")}

DATA: web.AppKey[ViewerData] = web.AppKey("data", ViewerData)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
HOSTS: web.AppKey[set[str]] = web.AppKey("hosts", set)
LOCK: web.AppKey[asyncio.Lock] = web.AppKey("lock", asyncio.Lock)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _asset(name: str) -> str:
    return files("overrefusal.viewer").joinpath("static", name).read_text(encoding="utf-8")


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    hosts = request.app[HOSTS]
    if hosts and request.host not in hosts:
        raise web.HTTPMisdirectedRequest(text="unknown Host\n")
    response = await handler(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


async def _index(request: web.Request) -> web.Response:
    page = _asset("index.html").replace("{{TOKEN}}", request.app[TOKEN])
    return web.Response(text=page, content_type="text/html")


async def _static(request: web.Request) -> web.Response:
    name, kind = _STATIC[request.path]
    return web.Response(text=_asset(name), content_type=kind)


async def _meta(request: web.Request) -> web.Response:
    return web.json_response(request.app[DATA].meta())


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):  # "²".isdigit() is true
        raise web.HTTPBadRequest(text=f"{name} must be a non-negative integer\n")
    return int(raw)


async def _rows(request: web.Request) -> web.Response:
    filters = {k: request.query.get(k, "") for k in ("model", "category", "label", "verdict", "disagree", "gold")}
    data = request.app[DATA]
    page = await asyncio.to_thread(data.query, filters, _int(request, "offset", 0), _int(request, "limit", 50))
    return web.json_response(page)


async def _image(request: web.Request) -> web.Response:
    """An image of a run folder's ``images/`` (the only files served besides the page and its assets)."""
    run, name = request.match_info["run"], request.match_info["name"]
    path = request.app[DATA].image_path(int(run), name) if run.isascii() and run.isdigit() else None
    if path is None:
        raise web.HTTPNotFound(text="no such image\n")
    kind = MEDIA_BY_EXTENSION[path.suffix.lstrip(".")]
    body = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=body, content_type=kind, headers={"Content-Disposition": "inline"})


async def _relabel(request: web.Request) -> web.Response:
    token = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(token.encode(), request.app[TOKEN].encode()):
        raise web.HTTPForbidden(text="missing or wrong session token\n")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise web.HTTPForbidden(text="cross-origin request refused\n")
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send application/json\n")
    try:
        body = await request.json()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="body is not JSON\n") from exc
    data = request.app[DATA]
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='body must be a JSON object like {"row": 0, "final_label": "compliance"}\n')
    row, label = body.get("row"), body.get("final_label")
    if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < len(data.rows):
        raise web.HTTPBadRequest(text="row must be a row number from /api/rows\n")
    if label not in GOLD_LABELS:
        raise web.HTTPBadRequest(text=f"final_label must be one of {', '.join(GOLD_LABELS)}\n")
    if data.rows[row].verdict in ("error", "missing"):
        raise web.HTTPBadRequest(text="this prompt has no response to label\n")
    async with request.app[LOCK]:
        updated = await asyncio.to_thread(data.relabel, row, label)
    return web.json_response(updated)


def build_app(data: ViewerData, token: str | None = None) -> web.Application:
    """The application; call :func:`allow_hosts` once the port is known."""
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[DATA] = data
    app[TOKEN] = token or secrets.token_urlsafe(32)
    app[HOSTS] = set()
    app[LOCK] = asyncio.Lock()
    app.router.add_get("/", _index)
    for path in _STATIC:
        app.router.add_get(path, _static)
    app.router.add_get("/api/meta", _meta)
    app.router.add_get("/api/rows", _rows)
    app.router.add_get("/api/image/{run}/{name}", _image)
    app.router.add_post("/api/relabel", _relabel)
    return app


def allow_hosts(app: web.Application, host: str, port: int) -> None:
    """Accept requests whose Host is this server (by the bound address, and ``localhost`` on loopback).

    A wildcard bind (``0.0.0.0``, ``::``), chosen explicitly to share the viewer, accepts any Host; the relabel
    token and Origin checks still apply.
    """
    hosts = app[HOSTS]  # mutated in place: the started application's state is frozen
    hosts.clear()
    if host in ("0.0.0.0", "::", ""):
        return
    names = {host, f"[{host}]"}
    if host in ("127.0.0.1", "::1", "localhost"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    hosts.update(f"{n}:{port}" for n in names)


async def start(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, int]:
    """Start serving; return the runner (``await runner.cleanup()`` to stop) and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise BadInputError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): pick another --port (0 takes a free one) "
            "or a --host of this machine"
        ) from None
    bound = runner.addresses[0][1]
    allow_hosts(app, host, bound)
    return runner, int(bound)
