"""The dashboard's guard: a secret token, a Host check, CSRF checks on actions, strict response headers.

* Every request must carry the token printed at start: ``?token=`` in the URL (once: the page then
  keeps it in an HttpOnly, SameSite=Strict cookie named for the port, as Jupyter's are, and drops it
  from the address bar), the cookie, or ``Authorization: Bearer TOKEN`` (scripts).
* Bound to loopback, the Host header must name loopback, so a web site cannot reach the page through
  DNS rebinding.
* An action (any method but GET and HEAD) is refused unless actions are enabled, and then needs the
  page's CSRF token in ``X-CSRF-Token`` and, when the browser sends one, an ``Origin`` of the page itself
  (the address it was opened at: ``127.0.0.1``, ``localhost`` or another the server listens on).
* Every answer carries a Content-Security-Policy that allows nothing but the node's own scripts,
  styles and connections, and is neither cached, framed nor referred.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web

COOKIE = "gaia_dashboard"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD"})

HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is this machine only: localhost, 127.0.0.0/8, ::1."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_secret() -> str:
    """An unguessable token (256 random bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def same(given: str, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


@attrs.define
class Guard:
    """What the guard checks a request against."""

    token: str
    csrf: str
    host: str
    port: int = 0
    actions: bool = False

    @property
    def cookie(self) -> str:
        """The token cookie's name: one per port, so pages of two dashboards (a devnet's nodes) open in one
        browser do not replace each other's cookie (cookies are per host, not per port)."""
        return f"{COOKIE}_{self.port}"

    @property
    def origin(self) -> str:
        """The page's own origin, as a browser sends it in ``Origin``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def host_ok(self, host: str) -> bool:
        """Whether a request's Host header may reach this server (any, unless bound to loopback: then the
        loopback names and the bound address)."""
        if not loopback(self.host):
            return True
        return host in {f"127.0.0.1:{self.port}", f"localhost:{self.port}", f"[::1]:{self.port}",
                        self.origin.removeprefix("http://")}

    def token_of(self, request: web.Request) -> str:
        """The token a request carries, or ''."""
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            return bearer.removeprefix("Bearer ")
        return request.query.get("token") or request.cookies.get(self.cookie, "")

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Refuse what fails a check with 403 and one line saying what to do; else serve it."""
        if not self.host_ok(request.host):
            return refuse(f"unexpected Host {request.host!r}: open the dashboard at {self.origin}/")
        if not same(self.token_of(request), self.token):
            return refuse("missing or wrong token: open the URL `gaia dashboard` printed (it ends in ?token=...)")
        if request.method not in SAFE_METHODS:
            if not self.actions:
                return refuse("this dashboard is read-only: start it with --allow-actions to cancel jobs")
            origin = request.headers.get("Origin")
            # the page's origin is the address it was opened at (Host, checked above when on loopback)
            if not same(request.headers.get(CSRF_HEADER, ""), self.csrf) or origin not in (None, f"http://{request.host}"):
                return refuse("cross-site request refused: use the buttons of the dashboard page itself")
        if request.method == "GET" and request.path == "/" and "token" in request.query:
            response = web.Response(status=303, headers={"Location": "/"})  # the token in a cookie, off the address bar
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            return response
        return await handler(request)


def refuse(why: str) -> web.Response:
    """403 with one line of text."""
    return web.Response(status=403, text=f"403 Forbidden: {why}\n")


async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """Put :data:`HEADERS` on every answer, errors and event streams included."""
    response.headers.update(HEADERS)
