"""The front end's way to the data: the back end's JSON API, asked with the service token.

The browser never sees the token or the back end; it asks the front end, which checks what the account
may see and then asks here. One urllib3 pool serves every thread (it is thread-safe, and keeps
connections to the back end alive between requests).
"""

from __future__ import annotations

import json
from typing import NamedTuple
from urllib.parse import quote

import urllib3
from flask_babel import gettext


class BackendError(Exception):
    """The back end refused or could not be reached; `status` and `body` are what to tell the browser."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.body = status, {"error": error, "message": message}


class Tagged(NamedTuple):
    """A tagged answer: 200 with its body, or 304 (unchanged since the tag the browser holds)."""

    status: int
    etag: str | None
    body: bytes


def api_path(*segments: str) -> str:
    """A back-end path from its segments, each escaped whole: an id can never add a segment or a query,
    and `.` or `..`, which HTTP clients collapse, go encoded."""
    escaped = [quote(str(segment), safe="") for segment in segments]
    return "/" + "/".join(part if part not in (".", "..") else part.replace(".", "%2E") for part in escaped)


class Backend:
    def __init__(self, base_url: str, token: str | None, timeout_s: float):
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.pool = urllib3.PoolManager(
            maxsize=16, headers=headers, timeout=urllib3.Timeout(total=timeout_s), retries=False
        )

    def get(self, path: str, params: dict | None = None):
        """GET `/api/v1{path}` and return its JSON; any non-200 answer raises BackendError."""
        response = self._request(path, params)
        return self._body(response)

    def get_tagged(self, path: str, params: dict | None, if_none_match: str | None) -> Tagged:
        """GET an answer the back end tags (the map), passing on the browser's If-None-Match: its body
        as the back end sent it (not parsed and written again) or, when unchanged, 304 and no body."""
        headers = {"If-None-Match": if_none_match} if if_none_match else None
        response = self._request(path, params, headers)
        if response.status in (200, 304):
            return Tagged(response.status, response.headers.get("ETag"), response.data)
        self._body(response)  # raises the refusal

    def _request(self, path: str, params: dict | None, headers: dict | None = None):
        headers = {**self.pool.headers, **headers} if headers else None  # None: the pool's own
        try:
            return self.pool.request("GET", f"{self.base_url}/api/v1{path}", fields=params, headers=headers)
        except urllib3.exceptions.HTTPError:
            message = gettext(
                "the data service cannot be reached"
            )  # shown to people, on a page or by a script
            raise BackendError(502, "backend_unavailable", message) from None

    @staticmethod
    def _body(response):
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if response.status == 200 and body is not None:
            return body
        body = body if isinstance(body, dict) else {}
        if response.status in (400, 404):  # the caller's mistake: pass the back end's words on (English)
            raise BackendError(response.status, body.get("error", "error"), body.get("message", ""))
        # 401 means our token is wrong: a configuration fault, not the user's.
        raise BackendError(
            502, "backend_error", gettext("the data service answered %(status)s", status=response.status)
        )
