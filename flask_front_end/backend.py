"""The front end's way to the data: the back end's JSON API, asked with the service token.

The browser never sees the token or the back end; it asks the front end, which checks what the account
may see and then asks here. One urllib3 pool serves every thread (it is thread-safe, and keeps
connections to the back end alive between requests).
"""

from __future__ import annotations

import json

import urllib3


class BackendError(Exception):
    """The back end refused or could not be reached; `status` and `body` are what to tell the browser."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.body = status, {"error": error, "message": message}


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
        try:
            response = self.pool.request("GET", f"{self.base_url}/api/v1{path}", fields=params)
        except urllib3.exceptions.HTTPError:
            raise BackendError(502, "backend_unavailable", "the data service cannot be reached") from None
        try:
            body = json.loads(response.data)
        except ValueError:
            body = None
        if response.status == 200 and body is not None:
            return body
        body = body if isinstance(body, dict) else {}
        if response.status in (400, 404):  # the caller's mistake: pass the back end's words on
            raise BackendError(response.status, body.get("error", "error"), body.get("message", ""))
        # 401 means our token is wrong: a configuration fault, not the user's.
        raise BackendError(502, "backend_error", f"the data service answered {response.status}")
