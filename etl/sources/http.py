"""HTTP for the remote sources: bounded retries with backoff, a timeout and a deadline on every call, clear
errors.

urllib3's `Retry` handles connection errors, 429 and 5xx (honouring Retry-After). A 200 whose body is not
the JSON it should be (cut short, an HTML page from a proxy) is retried here, within the same bound.

`timeout_s` bounds the connect and each wait for a piece of the answer; a server that sends a byte every
few seconds never trips it. So each attempt also has a deadline, `deadline_s`, for connect and the whole
body: the body is read piece by piece (`read1`, which returns whatever has arrived) with a look at a
monotonic clock between pieces. An attempt past its deadline is given up, its connection closed, and
retried like a timeout, within the same bound. The clock restarts at each of urllib3's own retries, so
waiting as a Retry-After asks does not use up the deadline. One piece can still take up to `timeout_s`,
so an attempt ends at most `deadline_s + timeout_s` after it started once its head has arrived.

After the last attempt the error names the source and what was asked, never the key.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError
from urllib3.util.retry import Retry

from core.errors import GrowWowError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

RETRY_STATUSES = (429, 500, 502, 503, 504)
PIECE_BYTES = 64 * 1024  # the most one read of the body asks for; it returns what has arrived, up to this
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0


def in_order(call: Callable[[T], R], items: Iterable[T], workers: int, name: str) -> Iterator[R]:
    """`call` on each item in a pool of `workers` threads, results in the items' order. Only a few calls
    run ahead of the one the caller waits for, however slowly it takes them: unlike `Executor.map`, which
    starts every call at once and holds every answer until it is taken (a year of every station's
    reports, on a first run)."""
    ahead = 4 * workers
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(call, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class SourceError(GrowWowError):
    """A remote source failed for good: the message names the source and what was asked."""


def decode_json(content: bytes):
    """An answer's body → its JSON value; ValueError when it is not JSON. The one place answers are
    decoded, so the decoder can be swapped.

    orjson is strict and fast. A body it refuses may still be JSON as some servers write it, with bare
    Infinity, NaN or 1e999 for a value: Python's own decoder reads those as non-finite floats, which
    the checks of each source then quarantine, instead of one value failing the whole answer."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        try:
            return json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise ValueError("not JSON") from None


@dataclass(frozen=True)
class HttpPolicy:
    """How hard to try: seconds to connect and to wait for each piece of an answer, attempts in all, the
    first backoff in seconds, and the most seconds one attempt may take in all (connect + the whole body)."""

    timeout_s: float = 30.0
    attempts: int = 5
    backoff_s: float = 0.5
    deadline_s: float = 120.0

    @classmethod
    def from_settings(cls, settings) -> HttpPolicy:
        """The policy from settings with `http_timeout_s`, `http_attempts`, `http_backoff_s` and
        `http_deadline_s` (an `etl.settings.EtlSettings`)."""
        return cls(
            timeout_s=settings.http_timeout_s,
            attempts=settings.http_attempts,
            backoff_s=settings.http_backoff_s,
            deadline_s=settings.http_deadline_s,
        )

    def retry(self) -> Retry:
        return _ClockedRetry(
            total=self.attempts - 1,
            connect=self.attempts - 1,
            read=self.attempts - 1,
            status=self.attempts - 1,
            other=0,
            allowed_methods=None,  # GROW reads with POST; every call here is a read
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_s,
            backoff_max=BACKOFF_MAX_S,
            respect_retry_after_header=True,
            retry_after_max=RETRY_AFTER_MAX_S,  # a hostile Retry-After must not park a worker for hours
            raise_on_status=False,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...): doubling, at most 30 s."""
        return min(self.backoff_s * 2 ** (attempt - 1), BACKOFF_MAX_S)


# When the current attempt began, per thread: set before each call, and again by urllib3 at each of its
# own retries (after its wait), so the deadline is for the attempt that brought the answer.
_clock = threading.local()


class _ClockedRetry(Retry):
    """urllib3's Retry, restarting the attempt's clock when it has waited and is about to try again."""

    def sleep(self, response=None) -> None:
        super().sleep(response)
        _clock.started = time.monotonic()


class _DeadlinePassed(Exception):
    """The attempt took longer than the policy's deadline."""


class Source:
    """One remote API: its base URL, headers and retry policy, with a session per thread."""

    def __init__(self, name: str, base_url: str, headers: dict[str, str], policy: HttpPolicy):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = headers
        self.policy = policy
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        # requests.Session is not guaranteed thread-safe, so each worker thread gets its own.
        session = getattr(self._local, "session", None)
        if session is None:
            session = _KeyedSession()
            adapter = HTTPAdapter(max_retries=self.policy.retry(), pool_maxsize=4)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self.headers)
            # The key travels in the headers: an auth of our own keeps requests from looking in ~/.netrc
            # on every call (and from replacing the key with a password it found there).
            session.auth = _HeadersOnly()
            self._local.session = session
        return session

    def request_json(self, method: str, path: str, what: str, **kwargs):
        """Call the API and return its decoded JSON; SourceError naming `what` when it cannot."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        policy = self.policy
        problem = "no answer"
        for attempt in range(1, policy.attempts + 1):
            try:
                status, content_type, content = self._attempt(method, url, **kwargs)
            except RedirectRefused as exc:
                raise SourceError(f"{self.name} {what}: {exc}") from None
            except requests.RequestException as exc:
                # urllib3 has already retried with backoff; this is final.
                raise SourceError(
                    f"{self.name} {what}: {_reason(exc)} after {policy.attempts} attempts"
                ) from None
            except _DeadlinePassed:
                problem = f"no complete answer within {policy.deadline_s:g} s"
                log.warning("%s %s: %s; attempt %d of %d", self.name, what, problem, attempt, policy.attempts)
                if attempt < policy.attempts:
                    time.sleep(policy.backoff(attempt))
                continue
            if status in RETRY_STATUSES:
                raise SourceError(f"{self.name} {what}: HTTP {status} after {policy.attempts} attempts")
            if status >= 400:
                raise SourceError(f"{self.name} {what}: HTTP {status} {_message(content)}")
            try:
                return decode_json(content)
            except ValueError:
                problem = f"answer is not JSON ({len(content)} bytes, {content_type or '?'})"
                log.warning("%s %s: %s; attempt %d of %d", self.name, what, problem, attempt, policy.attempts)
        raise SourceError(f"{self.name} {what}: {problem} after {policy.attempts} attempts")

    def _attempt(self, method: str, url: str, **kwargs) -> tuple[int, str | None, bytes]:
        """One attempt: the status, Content-Type and whole (decoded) body of the answer. _DeadlinePassed
        when it takes longer than the deadline; the connection is closed or back in its pool either way."""
        _clock.started = time.monotonic()
        response = self.session.request(method, url, timeout=self.policy.timeout_s, stream=True, **kwargs)
        try:
            status = response.status_code
            if status in RETRY_STATUSES:
                return status, None, b""  # only the status is told
            content_type = response.headers.get("Content-Type")
            try:
                content = read_body(response.raw, _clock.started + self.policy.deadline_s)
            except (requests.RequestException, _DeadlinePassed):
                if status >= 400:
                    return status, content_type, b""  # the error without its explanation
                raise
            return status, content_type, content
        finally:
            response.close()  # back to the pool when read whole, else closed


class RedirectRefused(requests.RequestException):
    """The API redirected to another host, where its key is not to be sent."""


def _host(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _KeyedSession(requests.Session):
    """A session whose headers hold an API key: it follows a redirect only on the API's own host.
    requests drops the Authorization header on a redirect to another host, but not a key in another
    header (WOW's Ocp-Apim-Subscription-Key)."""

    def rebuild_auth(self, prepared_request, response) -> None:
        if _host(prepared_request.url) != _host(response.request.url):
            host, port = _host(prepared_request.url)
            raise RedirectRefused(f"redirected to another host ({host}:{port}), not followed with the key")
        super().rebuild_auth(prepared_request, response)


class DeadlineSession(requests.Session):
    """A requests Session whose every call must bring its whole answer within `deadline_s` (as well as
    each piece within the call's own timeout), else requests.Timeout: for clients that take a session,
    such as googlemaps. The answer comes back read, as if not streamed."""

    def __init__(self, deadline_s: float):
        super().__init__()
        self.deadline_s = deadline_s

    def request(self, method, url, *args, **kwargs):
        started = time.monotonic()
        kwargs["stream"] = True
        response = super().request(method, url, *args, **kwargs)
        try:
            response._content = read_body(response.raw, started + self.deadline_s)
            response._content_consumed = True
        except _DeadlinePassed:
            raise requests.Timeout(f"no complete answer within {self.deadline_s:g} s") from None
        finally:
            response.close()  # back to the pool when read whole, else closed
        return response


class _HeadersOnly(requests.auth.AuthBase):
    """Authentication by the session's headers alone."""

    def __call__(self, request):
        return request


def read_body(raw: urllib3.HTTPResponse, deadline: float) -> bytes:
    """The whole body of a streamed answer, read a piece at a time with a look at the monotonic clock
    between pieces (_DeadlinePassed once past `deadline`); decoded (gzip, deflate, ...) once it is all in,
    so a trickle of compressed bytes is timed like any other. Failures as requests' exceptions."""
    pieces = []
    try:
        while True:
            if time.monotonic() > deadline:
                raise _DeadlinePassed
            # read1: at most one read of the socket, so it returns whatever has arrived, however little;
            # read(amt) and iter_content(amt) wait for amt bytes.
            piece = raw.read1(PIECE_BYTES, decode_content=False)
            if not piece:
                break
            pieces.append(piece)
        return _decode_content(raw, b"".join(pieces))
    # The body's failures, turned into requests' own as iter_content does, so they end as they did.
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from None
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from None
    except ReadTimeoutError as exc:
        raise requests.exceptions.ConnectionError(exc) from None
    except SSLError as exc:
        raise requests.exceptions.SSLError(exc) from None


def _decode_content(raw: urllib3.HTTPResponse, body: bytes) -> bytes:
    """The body undone of its Content-Encoding, by urllib3's own decoders (all it asked the server for)."""
    if not raw.headers.get("Content-Encoding"):
        return body
    headers = {"Content-Encoding": raw.headers["Content-Encoding"]}
    return urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, preload_content=False).read(
        decode_content=True
    )


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return "timed out"
    if "Max retries exceeded" in text:
        return "no answer"
    return type(exc).__name__


def _message(content: bytes) -> str:
    """The server's own short explanation, if it gave one (GROW and WOW error bodies)."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        inner = body.get("Exception") if isinstance(body.get("Exception"), dict) else body
        message = inner.get("Message") or inner.get("message")
        if isinstance(message, str):
            return f"({message[:200]})"
    return ""
