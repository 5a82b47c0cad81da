"""Shared HTTP machinery for API backends: the transport, API keys and failure causes.

One :class:`HttpTransport` per backend holds an aiohttp connection pool, spreads requests over
one or more base URLs (an endpoint that refuses connections is skipped for a while), spaces
requests to an optional requests-per-minute limit, and retries 408 / 429 / 5xx answers,
timeouts, connection errors and malformed bodies with jittered exponential backoff that
honours ``Retry-After`` (up to ``max_retry_after_s``). A request that still fails becomes a
:class:`ResponseError`. The waiting policy (backoff, ``--rpm``, endpoint health) is :mod:`overrefusal.backends.retry`.

Some failures would fail every request the same way: a rejected key (401/403), an unknown model
or route (404), an invalid request (400), an exhausted quota, a ``Retry-After`` beyond the cap, and
endpoints that have all been down for ``give_up_after_s`` (the circuit breaker). Such an answer is
recorded as a ``fatal`` error; after ``fatal_after`` of them in a row (or at once for the last
two) the transport raises :class:`~overrefusal.errors.RunStopped` with one line naming the cause
and the fix, and the run stops.

API keys are read from environment variables. The key is sent only to the base URL's origin
(never along a redirect to another origin); it is masked in every form it can come back in
(:mod:`overrefusal.backends.redact`) in error messages and answers, and never appears in a repr,
a log line or the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

import aiohttp
from yarl import URL

from overrefusal.backends import http_causes
from overrefusal.backends.base import Backend
from overrefusal.backends.redact import Redactor
from overrefusal.backends.retry import Endpoints, RateLimiter, backoff_delay, parse_retry_after
from overrefusal.errors import BadInputError, RunStopped
from overrefusal.records import ResponseError

log = logging.getLogger("overrefusal.http")

T = TypeVar("T")

REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class HttpSettings:
    """Transport settings. None of them changes a model's answer, so none enters the cache key.

    Attributes:
        base_urls: one or more base URLs serving the same model; requests are spread over them.
        concurrency: requests in flight at once (over all base URLs).
        rpm: optional requests-per-minute limit (over all base URLs).
        timeout_s: time limit of one attempt, connection included.
        max_retries: retries after the first attempt before a request is recorded as an error.
        backoff_base_s: first backoff delay; it doubles on each retry (with jitter).
        backoff_max_s: longest backoff delay (``Retry-After`` may ask for more, up to ``max_retry_after_s``).
        endpoint_cooldown_s: how long a base URL that refused a connection is avoided.
        max_retry_after_s: longest ``Retry-After`` waited for; a longer one stops the run, saying until when.
        give_up_after_s: the run stops when every base URL has been down this long (the circuit breaker).
        down_after: failed attempts in a row (connection errors, timeouts, 5xx) that mark a base URL down.
        fatal_after: fatal answers in a row (401, 403, 404, 400, quota) that stop the run.
    """

    base_urls: tuple[str, ...]
    concurrency: int = 32
    rpm: float | None = None
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    endpoint_cooldown_s: float = 5.0
    max_retry_after_s: float = 60.0
    give_up_after_s: float = 120.0
    down_after: int = 5
    fatal_after: int = 3

    def __post_init__(self) -> None:
        if not self.base_urls:
            raise BadInputError("no base URL given: pass --base-url http://HOST:PORT/v1")
        if self.concurrency < 1:
            raise BadInputError("concurrency must be at least 1: pass --concurrency N")
        if self.rpm is not None and self.rpm <= 0:
            raise BadInputError("rpm must be positive: pass --rpm N or leave it out")
        if self.timeout_s <= 0 or not 0 <= self.max_retries <= 50:
            raise BadInputError("timeout_s must be positive and max_retries 0 to 50: fix the -B values")
        if self.backoff_base_s <= 0 or self.backoff_max_s < self.backoff_base_s:
            raise BadInputError("backoff_s must be positive (and at most the 30 s cap): fix -B backoff_s")
        if not self.give_up_after_s > 0 or not self.max_retry_after_s >= 0:
            raise BadInputError("--give-up-after must be positive and --max-retry-after at least 0: fix them")
        if self.down_after < 1 or self.fatal_after < 1:
            raise BadInputError("down_after and fatal_after must be at least 1: fix the -B values")


def normalise_base_urls(base_url: str | Sequence[str] | None, default: str) -> tuple[str, ...]:
    """Validate base URLs (http/https, no credentials) and strip trailing slashes.

    Raises:
        BadInputError: a URL is not http(s) or holds a user name or password.
    """
    if base_url is None or base_url == "" or (not isinstance(base_url, str) and not base_url):
        raw: list[str] = [default]
    elif isinstance(base_url, str):
        raw = [u for u in re.split(r"[,\s]+", base_url) if u]
    else:
        raw = [str(u) for u in base_url]
    urls: list[str] = []
    for text in raw:
        try:
            url = URL(text)
            url.port  # noqa: B018 - yarl checks the port when it is read
        except ValueError as exc:
            raise BadInputError(
                f"base URL {text!r} is not a valid URL ({exc}): write e.g. http://127.0.0.1:8000/v1"
            ) from None
        if any(SECRET_NAME.search(k) for k in url.query):
            raise BadInputError(
                "base URLs must not hold keys in their query string: put the key in an environment variable "
                "and pass --api-key-env"
            )
        if url.scheme not in ("http", "https") or not url.host:
            raise BadInputError(f"base URL {text!r} is not an http(s) URL: write e.g. http://127.0.0.1:8000/v1")
        if url.user or url.password:
            raise BadInputError(
                "base URLs must not hold credentials: put the key in an environment variable and pass --api-key-env"
            )
        clean = str(url).rstrip("/")
        if clean not in urls:
            urls.append(clean)
    return tuple(urls)


def read_api_key(api_key_env: str | None, default_env: str | None) -> str | None:
    """Read the API key from the environment variable named ``api_key_env`` (or ``default_env``).

    An explicitly named variable must be set; the default one is used only when set.

    Raises:
        BadInputError: the name is not a valid variable name, or the named variable is unset.
    """
    if api_key_env:
        if not _ENV_NAME.fullmatch(api_key_env):
            raise BadInputError(
                "api_key_env must be the NAME of an environment variable holding the key "
                "(e.g. --api-key-env OPENAI_API_KEY), never the key itself"
            )
        value = os.environ.get(api_key_env)
        if not value:
            shown = api_key_env if len(api_key_env) <= 40 else "named by --api-key-env"
            raise BadInputError(f"environment variable {shown} is not set: export it with your API key")
        return value
    if default_env:
        return os.environ.get(default_env) or None
    return None


class _Retry(Exception):
    """One attempt failed in a way worth retrying; ``down`` when it counts against the endpoint."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None, down: bool = True) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.down = down


class _Fatal(Exception):
    """An answer that every request would get: ``cause`` is the one line naming it and the fix."""

    def __init__(self, kind: str, message: str, cause: str, at_once: bool = False) -> None:
        super().__init__(cause)
        self.kind = kind
        self.message = message
        self.cause = cause
        self.at_once = at_once


@dataclass(frozen=True)
class Call:
    """One HTTP request as sent on each attempt: method, body bytes, content type, and how a 2xx body is read."""

    method: str = "POST"
    payload: bytes | None = None
    content_type: str | None = None
    """Overrides the JSON content type (a multipart upload)."""
    raw: bool = False
    """Hand ``parse`` the body bytes instead of the decoded JSON (a JSONL file download)."""
    model: object = None
    """The model asked for, named when the server answers 404."""


@dataclass(frozen=True)
class Failure:
    """A non-retriable HTTP error answer, handed to the backend's ``on_error`` hook."""

    status: int
    body: Any


class HttpTransport:
    """POSTs JSON to the backend's endpoints with retries; one instance per backend.

    Args:
        settings: URLs, concurrency, limits and retry policy.
        headers: headers sent with every request (authentication included: it goes only to the
            base URLs' origins, never along a redirect to another origin).
        secret: the API key, masked in every error message and answer.
        key_hint: how the user supplies the key, for the message on HTTP 401.
        sleep: the sleep function (tests pass a recorder).
        clock: the monotonic clock of the ``--rpm`` limiter (tests pass a fake one).
        models_path: path (after the base URL) listing the served models, named on HTTP 404.
        auth_names: the headers in ``headers`` that carry credentials.
    """

    def __init__(
        self,
        settings: HttpSettings,
        headers: Mapping[str, str],
        secret: str | None = None,
        key_hint: str = "the API key",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        models_path: str = "/models",
        auth_names: Sequence[str] = ("Authorization", "x-api-key"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare the transport; the connection pool opens on first use, inside the running loop."""
        self.settings = settings
        self.endpoints = Endpoints(settings.base_urls, settings.endpoint_cooldown_s, settings.down_after)
        lowered = {n.lower() for n in auth_names}
        self._auth = {k: v for k, v in headers.items() if k.lower() in lowered}
        self._headers = {
            "Content-Type": "application/json",
            **{k: v for k, v in headers.items() if k not in self._auth},
        }
        self._redactor = Redactor(secret)
        self._key_hint = key_hint
        self._sleep = sleep
        self._models_path = models_path
        self._limiter = RateLimiter(settings.rpm, sleep, clock) if settings.rpm else None
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[tuple[int, str], URL] = {}
        self._origins = {URL(u).origin() for u in settings.base_urls}
        self._fatal_streak = 0
        self._stopped: str | None = None
        self._served: dict[int, list[str] | None] = {}
        self._proven = False
        self._probe: asyncio.Semaphore | None = None
        self._probe_waiting = 0

    def __repr__(self) -> str:
        return f"HttpTransport(base_urls={self.settings.base_urls!r})"

    def _redact(self, text: str) -> str:
        """``text`` with the API key masked: done before any truncation, so no part of the key survives."""
        return self._redactor.redact(text) if self._redactor else text

    def _scrub(self, text: str) -> str:
        return self._redact(text)[:300]

    def _url(self, index: int, path: str) -> URL:
        url = self._urls.get((index, path))
        if url is None:  # parsed once per endpoint and path, not per request
            url = self._urls[(index, path)] = URL(self.endpoints.urls[index] + path)
        return url

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=False)
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers=self._headers, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def _give_up(self) -> _Fatal | None:
        """The circuit breaker: fatal once every base URL has been down for ``give_up_after_s``."""
        down = self.endpoints.down_for(time.monotonic())
        if down < self.settings.give_up_after_s:
            return None
        urls = ", ".join(self.endpoints.urls)
        since = datetime.now(timezone.utc) - timedelta(seconds=down)
        cause = (
            f"no answer from {urls} since {since:%H:%M:%S} UTC (connection refused, timeouts or 5xx; "
            f"gave up after {self.settings.give_up_after_s:g}s): start the server or check --base-url, "
            "then run the same command again to continue"
        )
        return _Fatal("endpoint_down", "every base URL is down", cause, at_once=True)

    def _fatal_result(self, fatal: _Fatal) -> ResponseError:
        """Record a fatal answer; raise :class:`RunStopped` once they leave no doubt."""
        self._fatal_streak += 1
        if fatal.at_once or self._fatal_streak >= self.settings.fatal_after or self._stopped is not None:
            self._stopped = self._stopped or fatal.cause
            raise RunStopped(self._stopped)
        return ResponseError(kind=fatal.kind, message=self._scrub(fatal.message), fatal=True)

    async def post(
        self,
        path: str,
        body: Mapping[str, Any],
        parse: Callable[[Any], T],
        on_error: Callable[[Failure], T | None] | None = None,
    ) -> T | ResponseError:
        """POST ``body`` to ``<base URL><path>``, retrying as configured.

        Args:
            path: path appended to the base URL, e.g. ``/chat/completions``.
            body: the JSON body.
            parse: turns a 2xx JSON answer into the result; raising ``KeyError``, ``TypeError``,
                ``ValueError``, ``IndexError`` or ``AttributeError`` marks the answer malformed (retried).
            on_error: may turn a non-retriable error answer (e.g. a provider's content filter
                on HTTP 400) into a result; ``None`` records it as an error.

        Returns:
            The parsed result, or the :class:`ResponseError` of the last attempt.

        Raises:
            RunStopped: a cause that fails every request stopped the run (the message names it and the fix).
        """
        if self._proven:
            return await self._send(path, self._json_call(body), parse, on_error)
        # until one answer succeeds, only the first few requests go out: a slot taken by a fatal
        # answer is not given back, so a server that rejects everything sees ``fatal_after`` requests
        if self._probe is None:
            self._probe = asyncio.Semaphore(self.settings.fatal_after)
        self._probe_waiting += 1
        try:
            await self._probe.acquire()
        finally:
            self._probe_waiting -= 1
        try:
            result = await self._send(path, self._json_call(body), parse, on_error)
        except BaseException:
            self._probe.release()
            raise
        if not (isinstance(result, ResponseError) and result.fatal):
            self._probe.release()
        return result

    def _open_probe_gate(self) -> None:
        """The server answered: requests go out at full concurrency, those queued behind the probe too."""
        self._proven = True
        if self._probe is not None:
            for _ in range(self._probe_waiting):  # wake every waiter at once, not one per finished probe
                self._probe.release()

    @staticmethod
    def _json_call(body: Mapping[str, Any]) -> Call:
        return Call(payload=json.dumps(body).encode(), model=body.get("model"))

    async def request(self, path: str, call: Call, parse: Callable[[Any], T]) -> T | ResponseError:
        """Send ``call`` to ``<base URL><path>`` with the retries and key handling of :meth:`post`.

        For requests other than model calls (file uploads, batch status, downloads); ``parse`` gets
        the decoded JSON, or the body bytes when ``call.raw``.

        Raises:
            RunStopped: a cause that fails every request stopped the run.
        """
        return await self._send(path, call, parse, None)

    async def _send(
        self,
        path: str,
        call: Call,
        parse: Callable[[Any], T],
        on_error: Callable[[Failure], T | None] | None,
    ) -> T | ResponseError:
        if self._stopped is not None:
            raise RunStopped(self._stopped)
        session = self._get_session()
        settings = self.settings
        attempts = settings.max_retries + 1
        for attempt in range(attempts):
            if self._limiter is not None:
                await self._limiter.wait()
            gave_up = self._give_up()
            if gave_up is not None:
                return self._fatal_result(gave_up)
            index = self.endpoints.pick()
            url = self._url(index, path)
            sent = time.monotonic()
            try:
                result = await self._attempt(session, url, call, parse, on_error, index)
                self.endpoints.succeeded(index)
                self._fatal_streak = 0
                if not self._proven:
                    self._open_probe_gate()
                return result
            except _Fatal as fatal:
                self.endpoints.succeeded(index)  # it answered
                return self._fatal_result(fatal)
            except _Retry as retry:
                failure = retry
                if retry.down:
                    self.endpoints.failed(index, sent, avoid=False)
                else:
                    self.endpoints.succeeded(index)
            except aiohttp.ClientConnectorError as exc:
                self.endpoints.failed(index, sent)
                failure = _Retry("connection", f"cannot connect to {self.endpoints.urls[index]}: {exc.strerror}")
            except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
                self.endpoints.failed(index, sent, avoid=False)
                failure = _Retry("timeout", f"no answer within {settings.timeout_s:g}s")
            except (aiohttp.ClientError, ConnectionError) as exc:
                self.endpoints.failed(index, sent, avoid=False)
                failure = _Retry("connection", f"{type(exc).__name__}: {exc}")
            if attempt + 1 < attempts:
                delay = backoff_delay(
                    attempt,
                    settings.backoff_base_s,
                    settings.backoff_max_s,
                    failure.retry_after,
                    max_retry_after_s=settings.max_retry_after_s,
                )
                log.debug("retry %d after %.2fs: %s", attempt + 1, delay, failure.kind)
                await self._sleep(delay)
        gave_up = self._give_up()
        if gave_up is not None:
            return self._fatal_result(gave_up)
        plural = "s" if attempts > 1 else ""
        return ResponseError(kind=failure.kind, message=self._scrub(f"{failure.message} ({attempts} attempt{plural})"))

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        url: URL,
        call: Call,
        parse: Callable[[Any], T],
        on_error: Callable[[Failure], T | None] | None,
        index: int,
    ) -> T | ResponseError:
        crossed: URL | None = None  # the other origin a redirect led to
        model = call.model
        for _hop in range(MAX_REDIRECTS + 1):
            headers_out = dict(self._auth) if crossed is None else {}
            if call.content_type is not None:
                headers_out["Content-Type"] = call.content_type
            async with session.request(
                call.method, url, data=call.payload, headers=headers_out or None, allow_redirects=False
            ) as answer:
                raw = await answer.read()
                status = answer.status
                headers = answer.headers
            location = headers.get("Location") if status in REDIRECTS else None
            if location is None:
                break
            url = url.join(URL(location))
            if url.origin() not in self._origins:
                crossed = url  # credentials are never sent to another origin
        else:
            raise _Retry("redirect", f"more than {MAX_REDIRECTS} redirects from {self.endpoints.urls[index]}")
        if self._redactor:
            raw = self._redactor.redact_bytes(raw)  # answers and errors that echo the key keep it masked
        if 200 <= status < 300:
            try:
                return parse(raw if call.raw else json.loads(raw))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                shown = raw.decode("utf-8", "replace")[:120]
                raise _Retry("bad_response", f"malformed answer ({type(exc).__name__}): {shown!r}") from None
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        message = f"HTTP {status}: {text[:200]}"
        if status == 429:
            if http_causes.quota_exhausted(data):
                raise _Fatal("quota", message, http_causes.quota(status, data))
            retry_after = parse_retry_after(headers)
            if retry_after is not None and retry_after > self.settings.max_retry_after_s:
                cause = http_causes.rate_limited(retry_after, self.settings.max_retry_after_s)
                raise _Fatal("rate_limited", message, cause, at_once=True)
            raise _Retry("http_429", message, retry_after, down=False)
        if status == 408 or status >= 500:
            raise _Retry(f"http_{status}", message, parse_retry_after(headers))
        if on_error is not None:
            rescued = on_error(Failure(status, data))
            if rescued is not None:
                return rescued
        if crossed is not None and status in (401, 403):
            raise _Fatal(f"http_{status}", message, http_causes.redirected(self.endpoints.urls[index], crossed))
        if status in (401, 403):
            raise _Fatal(
                f"http_{status}", message, http_causes.rejected(status, self._key_hint, bool(self._auth), model)
            )
        if status == 402:
            raise _Fatal("quota", message, http_causes.quota(status, data))
        if status == 404:
            served = await self._served_models(index)
            raise _Fatal("http_404", message, http_causes.not_found(self.endpoints.urls[index], model, served))
        if status == 400:
            detail = http_causes.server_message(data) or text
            raise _Fatal("http_400", message, http_causes.invalid(self._redact(detail)))
        return ResponseError(kind=f"http_{status}", message=self._scrub(message))

    async def _served_models(self, index: int) -> list[str] | None:
        """The model names ``GET <base URL><models_path>`` lists (None when it cannot tell); asked once."""
        if index not in self._served:
            self._served[index] = None
            try:
                async with self._get_session().get(
                    self._url(index, self._models_path),
                    headers=self._auth or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=min(10.0, self.settings.timeout_s)),
                ) as answer:
                    if answer.status == 200:
                        self._served[index] = http_causes.model_names(json.loads(await answer.read()))
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                pass
        return self._served[index]

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


SECRET_NAME = re.compile(r"(?:^|_)(?:api_?key|key|secret|password|passwd|token|auth|bearer|credentials?)$", re.I)
"""Argument names that would carry a secret (``max_tokens`` is not one)."""
_RUN_OPTIONS = frozenset({"max_tokens", "temperature", "top_p", "seed", "system_prompt"})


def reject_secrets(unknown: Mapping[str, object], backend: str) -> None:
    """Refuse unknown backend arguments, naming them but never echoing their values.

    Raises:
        BadInputError: always, when ``unknown`` is not empty.
    """
    if not unknown:
        return
    names = sorted(unknown)
    if any(SECRET_NAME.search(n) for n in names):
        raise BadInputError(
            f"the {backend} backend never takes a key as an argument: put it in an environment variable "
            "and pass its name with --api-key-env NAME"
        )
    options = [n for n in names if n in _RUN_OPTIONS]
    if options:
        flags = ", ".join("--" + n.replace("_", "-") for n in options)
        raise BadInputError(f"{', '.join(options)} is a generation setting, not a backend argument: pass {flags}")
    raise BadInputError(f"unknown {backend} backend argument(s) {', '.join(names)}: see `overrefusal run --help`")


class HttpBackend(Backend):
    """Common part of HTTP API backends: arguments, transport, identity.

    Subclasses set ``name``, ``default_base_url``, ``default_key_env`` and implement
    :meth:`generate` with :attr:`transport`.
    """

    default_base_url: ClassVar[str]
    default_key_env: ClassVar[str | None] = None
    """Variable read for the key when ``api_key_env`` is not given and the base URL is the default one."""
    models_path: ClassVar[str] = "/models"
    """Path after the base URL that lists the served models (named when the server answers 404)."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | Sequence[str] | None = None,
        api_key_env: str | None = None,
        concurrency: int = 32,
        rpm: float | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        give_up_after_s: float = 120.0,
        max_retry_after_s: float = 60.0,
        **unknown: object,
    ) -> None:
        """Configure the backend; see the class docstring of each backend for the arguments."""
        reject_secrets(unknown, self.name)
        if not model:
            raise BadInputError(f"the {self.name} backend needs a model: pass --model NAME (as the server names it)")
        self._model = str(model)
        urls = normalise_base_urls(base_url, self.default_base_url)
        # the default key variable goes only to the provider's own URL, never to another server
        default_env = self.default_key_env if urls == (self.default_base_url,) else None
        key = read_api_key(api_key_env, default_env)
        if key is None and default_env:  # the provider's own API always needs a key
            raise BadInputError(
                f"the {self.name} backend needs an API key for {urls[0]}: export {default_env}=<key> "
                "or pass --api-key-env NAME"
            )
        self._extra = dict(extra_body or {})
        self.settings = HttpSettings(
            base_urls=urls,
            concurrency=int(concurrency),
            rpm=float(rpm) if rpm is not None else None,
            timeout_s=float(timeout_s),
            max_retries=int(max_retries),
            backoff_base_s=float(backoff_s),
            give_up_after_s=float(give_up_after_s),
            max_retry_after_s=float(max_retry_after_s),
        )
        hint = f"${api_key_env or default_env}" if (api_key_env or default_env) else "--api-key-env"
        self.transport = HttpTransport(
            self.settings, self.auth_headers(key), secret=key, key_hint=hint, models_path=self.models_path
        )

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """Headers that carry ``key`` (none without a key)."""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self._model!r}, base_urls={self.settings.base_urls!r})"

    @property
    def model(self) -> str:
        """The model name sent to the server."""
        return self._model

    @property
    def identity(self) -> dict[str, str]:
        """Backend kind and model, plus extra body parameters when given (they change answers)."""
        ident = {"backend": self.name, "model": self._model}
        if self._extra:
            ident["extra_body"] = json.dumps(self._extra, sort_keys=True, separators=(",", ":"))
        return ident

    @property
    def concurrency(self) -> int:
        """Requests in flight at once."""
        return self.settings.concurrency

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.transport.aclose()
