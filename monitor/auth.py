"""Login for the monitor: a Flask login page and server-side sessions guarding every Dash route.

The session cookie (HttpOnly, SameSite=Lax, Secure when ``FRAUD_MONITOR_COOKIE_SECURE``, signed
with ``FRAUD_MONITOR_SECRET_KEY``) carries only a random session id and a CSRF token for the login
form; who is logged in is kept on the server, so logging out ends the session for good.

Machine endpoints (``/healthz``, ``/metrics``, ``/api/summary``) stay reachable without login.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import flask
from markupsafe import escape

from monitor.ratelimit import LoginThrottle, wait_text
from monitor.users import Accounts, User
from pipeline.config import Settings

logger = logging.getLogger(__name__)

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
PUBLIC_PATHS: frozenset[str] = frozenset({"/healthz", "/metrics", "/api/summary", LOGIN_PATH})
COOKIE_NAME = "fraud_monitor_session"
IP_FAILURE_FACTOR = 5
"""An address may fail this many times more often than one user from it (several users behind one NAT)."""
_USER_KEY = "monitor_user"


class SessionStore:
    """Logged-in sessions by random id, each expiring ``lifetime_seconds`` after login."""

    def __init__(self, lifetime_seconds: float, *, clock: Callable[[], float] = time.time) -> None:
        self._lifetime = lifetime_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (user name, expiry)

    def create(self, user: User) -> str:
        """A new session id for ``user``."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            for sid in [s for s, (_, expiry) in self._sessions.items() if expiry <= now]:
                del self._sessions[sid]
            self._sessions[session_id] = (user.name, now + self._lifetime)
        return session_id

    def user_name(self, session_id: str | None) -> str | None:
        """Who is logged in with ``session_id``; None when it is unknown or expired."""
        if not session_id:
            return None
        with self._lock:
            entry = self._sessions.get(session_id)
            if entry is None:
                return None
            name, expiry = entry
            if expiry <= self._clock():
                del self._sessions[session_id]
                return None
            return name

    def drop(self, session_id: str | None) -> None:
        """End a session (logout)."""
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)


def current_user() -> User | None:
    """The user of the request being served (None outside a request or when not logged in)."""
    if not flask.has_request_context():
        return None
    return flask.g.get(_USER_KEY)


def _safe_next(target: str | None) -> str:
    """Only local paths: an open redirect to another site is refused."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


def login_page(*, error: str | None, csrf_token: str, next_url: str, demo: bool) -> str:
    """The login form as HTML (everything inserted is escaped)."""
    message = f'<p id="login-error" class="error">{escape(error)}</p>' if error else ""
    demo_hint = (
        '<p class="hint">Local demo only: log in as <b>analyst</b>/<b>analyst</b> '
        "or <b>viewer</b>/<b>viewer</b>.</p>"
        if demo
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fraud monitor: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; background: #f4f6f8; margin: 0; }}
main {{ max-width: 340px; margin: 80px auto; background: #fff; padding: 24px 28px; border-radius: 8px;
        box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 20px; margin-top: 0; }}
label {{ display: block; margin-top: 12px; font-size: 13px; color: #444; }}
input {{ width: 100%; box-sizing: border-box; padding: 8px; margin-top: 4px; font-size: 14px; }}
button {{ margin-top: 18px; width: 100%; padding: 9px; font-size: 15px; background: #2c3e50; color: #fff;
          border: 0; border-radius: 4px; cursor: pointer; }}
.error {{ color: #c0392b; font-weight: bold; }}
.hint {{ font-size: 12px; color: #777; }}
</style></head>
<body><main>
<h1>Fraud Detection Dashboard: log in</h1>
{message}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="csrf_token" value="{escape(csrf_token)}">
<input type="hidden" name="next" value="{escape(next_url)}">
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="login-button" type="submit">Log in</button>
</form>
{demo_hint}
</main></body></html>"""


def _locked_out(wait: float, token: str, next_url: str, demo: bool) -> flask.Response:
    """429 with the login form, the time to wait, and a Retry-After header."""
    page = login_page(
        error=f"Too many failed logins. Try again in {wait_text(wait)}.",
        csrf_token=token,
        next_url=next_url,
        demo=demo,
    )
    response = flask.Response(page, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(max(1, round(wait)))
    return response


def install_login(
    server: flask.Flask,
    settings: Settings,
    accounts: Accounts,
    *,
    public_paths: Iterable[str] = PUBLIC_PATHS,
    sessions: SessionStore | None = None,
    throttles: tuple[LoginThrottle, LoginThrottle] | None = None,
) -> SessionStore:
    """Require a login for every route of ``server`` except ``public_paths``; returns the sessions.

    Failed logins are limited per user name and address and per address (``throttles``, default
    from the settings): past the limit the form answers 429 with the time to wait.
    """
    public = frozenset(public_paths) | {LOGIN_PATH}
    per_user, per_address = throttles or (
        LoginThrottle(
            settings.monitor_login_max_failures,
            settings.monitor_login_window_seconds,
            settings.monitor_login_lockout_seconds,
        ),
        LoginThrottle(
            settings.monitor_login_max_failures * IP_FAILURE_FACTOR,
            settings.monitor_login_window_seconds,
            settings.monitor_login_lockout_seconds,
        ),
    )
    store = sessions if sessions is not None else SessionStore(settings.monitor_session_hours * 3600)
    key = settings.monitor_secret_key
    server.secret_key = key.get_secret_value() if key is not None else secrets.token_hex(32)
    server.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.monitor_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.monitor_session_hours),
    )

    def csrf_token() -> str:
        token = flask.session.get("csrf")
        if not token:
            token = flask.session["csrf"] = secrets.token_urlsafe(24)
        return token

    def require_login() -> flask.Response | None:
        name = store.user_name(flask.session.get("sid"))
        user = accounts.user(name) if name is not None else None  # a removed user is logged out
        flask.g.setdefault(_USER_KEY, user)
        if user is not None or flask.request.path in public:
            return None
        path = flask.request.path
        if flask.request.method == "GET" and not path.startswith("/_"):
            target = flask.request.full_path if flask.request.query_string else path
            return flask.redirect(f"{LOGIN_PATH}?{urlencode({'next': target})}")
        # Dash's own routes (layout, callbacks, scripts) get a plain refusal, never the form.
        return flask.Response("login required", status=401, mimetype="text/plain")

    def login() -> flask.Response | str | tuple[str, int]:
        if flask.request.method == "GET":
            next_url = _safe_next(flask.request.args.get("next"))
            return login_page(error=None, csrf_token=csrf_token(), next_url=next_url, demo=accounts.demo)
        form = flask.request.form
        next_url = _safe_next(form.get("next"))
        expected = flask.session.get("csrf")
        if not expected or not secrets.compare_digest(expected, form.get("csrf_token", "")):
            page = login_page(
                error="The form expired; please try again.",
                csrf_token=csrf_token(),
                next_url=next_url,
                demo=accounts.demo,
            )
            return page, 400
        name = form.get("username", "").strip()
        address = flask.request.remote_addr or "unknown"
        user_key, address_key = f"{name[:128].casefold()}@{address}", address
        wait = max(per_user.retry_after([user_key]) or 0.0, per_address.retry_after([address_key]) or 0.0)
        if wait > 0:
            logger.warning("monitor login of %r from %s refused: locked out", name[:64], address)
            return _locked_out(wait, csrf_token(), next_url, accounts.demo)
        user = accounts.authenticate(name, form.get("password", ""))
        if user is None:
            logger.warning("monitor login refused for %r from %s", name[:64], address)
            locked = per_user.failed([user_key])
            locked = per_address.failed([address_key]) or locked
            if locked:
                logger.warning("monitor logins of %r from %s locked for %.0f s", name[:64], address, locked)
                return _locked_out(locked, csrf_token(), next_url, accounts.demo)
            page = login_page(
                error="Wrong user name or password.",
                csrf_token=csrf_token(),
                next_url=next_url,
                demo=accounts.demo,
            )
            return page, 401
        per_user.succeeded([user_key])
        store.drop(flask.session.get("sid"))
        flask.session.clear()  # a fresh session id at login: no session fixation
        flask.session["sid"] = store.create(user)
        flask.session.permanent = True
        logger.info("monitor login: %s (%s)", user.name, user.role)
        return flask.redirect(next_url)

    def logout() -> flask.Response:
        store.drop(flask.session.get("sid"))
        flask.session.clear()
        return flask.redirect(LOGIN_PATH)

    def security_headers(response: flask.Response) -> flask.Response:
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if flask.request.path == LOGIN_PATH:
            response.headers["Cache-Control"] = "no-store"
        return response

    server.before_request(require_login)
    server.after_request(security_headers)
    server.add_url_rule(LOGIN_PATH, "monitor_login", login, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "monitor_logout", logout, methods=["GET", "POST"])
    return store
