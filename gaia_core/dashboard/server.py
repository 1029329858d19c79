"""The dashboard's web server: the page, its JSON API and its live event stream, on a thread of its own.

Routes (every one behind :mod:`gaia_core.dashboard.security`):

=============================  ================================================================
``GET /``                      the page (HTML; scripts and styles from ``/static/``)
``GET /api/status``            what ``gaia status --json`` prints
``GET /api/peers``             what ``gaia peers --json`` prints
``GET /api/jobs?limit=N``      what ``gaia task list --json`` prints
``GET /api/rewards``           what ``gaia rewards --json`` prints
``GET /api/monitor``           one line of ``gaia monitor --json``
``GET /api/logs``              the log tail, ``{"lines": [...]}``
``GET /api/events``            server-sent events: ``history`` once, then one update per interval
``POST /api/jobs/JOB/cancel``  what ``gaia task cancel JOB --json`` prints (with ``--allow-actions``)
=============================  ================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from gaia_core.config import Home
from gaia_core.dashboard.feed import NodeFeed, Unreachable
from gaia_core.dashboard.logtail import FileTail, LogTail
from gaia_core.dashboard.security import Guard, Handler, add_headers, new_secret
from gaia_core.errors import GaiaError, UsageError

log = logging.getLogger("gaia.dashboard")
#: aiohttp's server logger for this dashboard (:func:`_client_fault` keeps a client's bad request out of it).
http_log = logging.getLogger("gaia.dashboard.http")

#: Pages (event streams) open at once; one more is refused with 503.
MAX_STREAMS = 16
#: Connections open at once, token or not; one more is answered 503 and closed (idle sockets held open by
#: any local process would otherwise use up the node's file descriptors).
MAX_CONNECTIONS = 64
#: Seconds a connection may stay idle between requests (aiohttp's default for a runner is an hour).
IDLE_S = 15.0
#: Seconds between comments on an idle event stream, so proxies and browsers keep it open.
KEEPALIVE_S = 15.0
#: Largest request body accepted (actions carry none).
MAX_BODY = 16 << 10
#: Seconds to start or stop the server.
START_TIMEOUT_S = 10.0
#: The page's files: name -> content type.
STATIC = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
#: Most jobs one API call lists.
MAX_JOBS = 1000


def _static(name: str) -> str:
    return resources.files("gaia_core.dashboard").joinpath("static", name).read_text(encoding="utf-8")


def _client_fault(record: logging.LogRecord) -> bool:
    """Drop aiohttp's report of a malformed request (a line too long, not HTTP at all): the client had its
    400 saying why; logged, any local process could fill the node's log with tracebacks without the token."""
    return not (record.exc_info and isinstance(record.exc_info[1], HttpProcessingError))


http_log.addFilter(_client_fault)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class Hub:
    """Polls the node once per ``interval`` while a page is open and sends each update to every open page."""

    def __init__(self, feed: NodeFeed, interval: float) -> None:
        self.feed = feed
        self.interval = interval
        self.streams: set[asyncio.Queue[str]] = set()
        self.latest: str | None = None
        self._wake = asyncio.Event()
        self._failing = False

    def subscribe(self) -> asyncio.Queue[str]:
        """A queue that receives each update (the latest one at once, when there is one)."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=4)
        if self.latest is not None:
            queue.put_nowait(self.latest)
        self.streams.add(queue)
        self._wake.set()
        return queue

    async def run(self) -> None:
        """Poll while any page is open; sleep otherwise."""
        while True:
            if not self.streams:
                self._wake.clear()
                await self._wake.wait()
            try:
                update = _dumps(await asyncio.to_thread(self.feed.snapshot))
                self._failing = False
            except Exception as exc:  # say it on the page and keep polling
                if not self._failing:  # once until an update succeeds again, not a traceback per second
                    log.exception("dashboard update failed")
                self._failing = True
                update = _dumps({"at": time.time(), "error": f"the dashboard could not read the node: {exc}"})
            self.latest = update
            for queue in self.streams:
                if queue.full():  # a page that does not keep up misses updates, never holds memory
                    queue.get_nowait()
                queue.put_nowait(update)
            await asyncio.sleep(self.interval)


class _Busy(asyncio.Protocol):
    """A connection over :data:`MAX_CONNECTIONS`: one line, then closed (a second later, so that closing with
    the request unread does not reset the connection before the client reads the line)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Answer 503 and close."""
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                        b"503: too many connections to this dashboard: close some pages\n")
        transport.write_eof()
        asyncio.get_running_loop().call_later(1.0, transport.close)


class Dashboard:
    """The dashboard of the node serving ``home``, on ``host:port`` (0: a free port), from a background thread.

    ``logs`` is where the log tail comes from (default: the home's ``node.log``); ``actions`` lets the
    page cancel jobs.
    """

    def __init__(self, home: Home, *, host: str = "127.0.0.1", port: int = 0, interval: float = 1.0,
                 actions: bool = False, logs: LogTail | None = None) -> None:
        self.feed = NodeFeed(home, logs or FileTail(home.log_file))
        self.guard = Guard(token=new_secret(), csrf=new_secret(), host=host, port=port, actions=actions)
        self.interval = interval
        self.hub = Hub(self.feed, interval)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gaia-dashboard", daemon=True)
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        """The page's address with its token: what to open in a browser."""
        return f"{self.guard.origin}/?token={self.guard.token}"

    def start(self) -> str:
        """Serve; return :attr:`url`. UsageError when the address cannot be bound."""
        host = self.guard.host
        try:
            listening = socket.create_server((host, self.guard.port),
                                             family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise UsageError(f"the dashboard cannot listen on {host}:{self.guard.port}: {exc.strerror or exc}",
                             hint="choose another port (0: any free port)") from None
        self.guard.port = listening.getsockname()[1]
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(listening), self._loop).result(START_TIMEOUT_S)
        return self.url

    async def _serve(self, listening: socket.socket) -> None:
        self._runner = web.AppRunner(self._app(), handle_signals=False, access_log=None, shutdown_timeout=1.0,
                                    logger=http_log, keepalive_timeout=IDLE_S)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None  # set up above

        def accept() -> asyncio.BaseProtocol:
            return server() if len(server.connections) < MAX_CONNECTIONS else _Busy()

        self._listener = await asyncio.get_running_loop().create_server(accept, sock=listening)

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Close every page's stream and stop serving; safe to call twice."""
        if self._loop.is_closed():
            return
        if self._loop.is_running():
            with contextlib.suppress(Exception):  # stopping: what fails to close goes with the loop
                asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(START_TIMEOUT_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread.is_alive():
            self._thread.join(START_TIMEOUT_S)
        self._loop.close()
        self.feed.close()

    # ------------------------------------------------------------------ the application

    def _app(self) -> web.Application:
        guard = self.guard

        @web.middleware
        async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await guard.middleware(request, handler)

        app = web.Application(middlewares=[guarded], client_max_size=MAX_BODY)
        app.on_response_prepare.append(add_headers)
        hub = self.hub
        page = (_static("index.html").replace("__CSRF__", guard.csrf)
                .replace("__ACTIONS__", "on" if guard.actions else "off"))
        files = {name: _static(name) for name in STATIC}

        async def index(_request: web.Request) -> web.Response:
            return web.Response(text=page, content_type="text/html")

        async def static(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            if name not in files:
                raise web.HTTPNotFound(text=f"no file {name!r} in this dashboard\n")
            return web.Response(text=files[name], content_type=STATIC[name])

        def api(method: str, **fixed: Any) -> Handler:
            async def handle(request: web.Request) -> web.StreamResponse:
                params = dict(fixed)
                if method == "jobs":
                    params["limit"] = _limit(request)
                return await self._answer(method, **params)
            return handle

        async def logs(_request: web.Request) -> web.Response:
            return web.json_response({"lines": await asyncio.to_thread(self.feed.logs.lines)}, dumps=_dumps)

        async def cancel(request: web.Request) -> web.StreamResponse:
            return await self._answer("cancel", job=request.match_info["job"])

        async def events(request: web.Request) -> web.StreamResponse:
            if len(hub.streams) >= MAX_STREAMS:
                raise web.HTTPServiceUnavailable(text=f"{MAX_STREAMS} dashboard pages are open already: close one\n")
            queue = hub.subscribe()
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            try:
                await response.prepare(request)
                history = _dumps({"points": list(self.feed.history), "interval": self.interval})
                await response.write(f"event: history\ndata: {history}\n\n".encode())
                while True:
                    try:
                        update = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        await response.write(b": keep-alive\n\n")
                        continue
                    await response.write(f"data: {update}\n\n".encode())
            except (ConnectionError, RuntimeError):  # the page went away (aiohttp says so with either)
                return response
            finally:
                hub.streams.discard(queue)

        async def start_hub(app_: web.Application) -> Any:
            task = asyncio.create_task(hub.run())
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(start_hub)
        app.router.add_get("/", index)
        app.router.add_get("/static/{name}", static)
        for route, method in (("status", "status"), ("peers", "peers"), ("jobs", "jobs"), ("rewards", "rewards"),
                              ("monitor", "sample")):
            app.router.add_get(f"/api/{route}", api(method))
        app.router.add_get("/api/logs", logs)
        app.router.add_get("/api/events", events)
        app.router.add_post("/api/jobs/{job}/cancel", cancel)
        return app

    async def _answer(self, method: str, **params: Any) -> web.Response:
        """The node's answer to ``method`` as JSON; its error as ``{"error", "exit_code"}`` (503 when no node runs)."""
        try:
            return web.json_response(await asyncio.to_thread(self.feed.call, method, **params), dumps=_dumps)
        except GaiaError as exc:
            return web.json_response({"error": str(exc), "exit_code": exc.exit_code},
                                     status=503 if isinstance(exc, Unreachable) else 400, dumps=_dumps)


def _limit(request: web.Request) -> int:
    """The ``limit`` query parameter (1 to :data:`MAX_JOBS`, default 20); 400 with one line otherwise."""
    text = request.query.get("limit", "20")
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or not 1 <= int(text) <= MAX_JOBS:
        raise web.HTTPBadRequest(text=f"limit must be a whole number from 1 to {MAX_JOBS}, got {text[:20]!r}\n")
    return int(text)

