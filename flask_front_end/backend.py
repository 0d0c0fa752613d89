"""The front end's way to the data: the back end's JSON API, asked with the service token.

The browser never sees the token or the back end; it asks the front end, which checks what the account
may see and then asks here.
"""

from __future__ import annotations

import threading

import requests


class BackendError(Exception):
    """The back end refused or could not be reached; `status` and `body` are what to tell the browser."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.body = status, {"error": error, "message": message}


class Backend:
    def __init__(self, base_url: str, token: str | None, timeout_s: float):
        self.base_url, self.timeout_s, self._token = base_url.rstrip("/"), timeout_s, token
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        """One keep-alive session per thread: gunicorn's threads must not share one."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    def get(self, path: str, params: dict | None = None):
        """GET `/api/v1{path}` and return its JSON; any non-200 answer raises BackendError."""
        try:
            url = f"{self.base_url}/api/v1{path}"
            response = self.session.get(url, params=params, timeout=self.timeout_s)
        except requests.RequestException:
            raise BackendError(502, "backend_unavailable", "the data service cannot be reached") from None
        if response.status_code == 200:
            return response.json()
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code in (400, 404):  # the caller's mistake: pass the back end's words on
            raise BackendError(response.status_code, body.get("error", "error"), body.get("message", ""))
        # 401 means our token is wrong: a configuration fault, not the user's.
        raise BackendError(502, "backend_error", f"the data service answered {response.status_code}")
