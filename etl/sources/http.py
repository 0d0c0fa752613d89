"""HTTP for the remote sources: bounded retries with backoff, a timeout on every call, clear errors.

urllib3's `Retry` handles connection errors, 429 and 5xx (honouring Retry-After). A 200 whose body is not
the JSON it should be (cut short, an HTML page from a proxy) is retried here, within the same bound.
After the last attempt the error names the source and what was asked, never the key.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.errors import GrowWowError

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 500, 502, 503, 504)


class SourceError(GrowWowError):
    """A remote source failed for good: the message names the source and what was asked."""


@dataclass(frozen=True)
class HttpPolicy:
    """How hard to try: seconds per call, attempts in all, and the first backoff in seconds."""

    timeout_s: float = 30.0
    attempts: int = 5
    backoff_s: float = 0.5

    def retry(self) -> Retry:
        return Retry(
            total=self.attempts - 1,
            connect=self.attempts - 1,
            read=self.attempts - 1,
            status=self.attempts - 1,
            other=0,
            allowed_methods=None,  # GROW reads with POST; every call here is a read
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_s,
            backoff_max=30,
            respect_retry_after_header=True,
            raise_on_status=False,
        )


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
            session = requests.Session()
            adapter = HTTPAdapter(max_retries=self.policy.retry(), pool_maxsize=4)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update(self.headers)
            self._local.session = session
        return session

    def request_json(self, method: str, path: str, what: str, **kwargs):
        """Call the API and return its decoded JSON; SourceError naming `what` when it cannot."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        problem = "no answer"
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = self.session.request(method, url, timeout=self.policy.timeout_s, **kwargs)
            except requests.RequestException as exc:
                # urllib3 has already retried with backoff; this is final.
                raise SourceError(
                    f"{self.name} {what}: {_reason(exc)} after {self.policy.attempts} attempts"
                ) from None
            if response.status_code in RETRY_STATUSES:
                raise SourceError(
                    f"{self.name} {what}: HTTP {response.status_code} after {self.policy.attempts} attempts"
                )
            if response.status_code >= 400:
                raise SourceError(f"{self.name} {what}: HTTP {response.status_code} {_message(response)}")
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                kind = response.headers.get("Content-Type", "?")
                problem = f"answer is not JSON ({len(response.content)} bytes, {kind})"
                log.warning(
                    "%s %s: %s; attempt %d of %d", self.name, what, problem, attempt, self.policy.attempts
                )
        raise SourceError(f"{self.name} {what}: {problem} after {self.policy.attempts} attempts")


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return "timed out"
    if "Max retries exceeded" in text:
        return "no answer"
    return type(exc).__name__


def _message(response: requests.Response) -> str:
    """The server's own short explanation, if it gave one (GROW and WOW error bodies)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(body, dict):
        inner = body.get("Exception") if isinstance(body.get("Exception"), dict) else body
        message = inner.get("Message") or inner.get("message")
        if isinstance(message, str):
            return f"({message[:200]})"
    return ""
