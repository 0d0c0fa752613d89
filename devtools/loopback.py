"""Serving a WSGI app on loopback from a thread: the simulator and the web apps in the demo and the tests."""

from __future__ import annotations

import logging
import threading


class _Response:
    """An app's response that closes once, whoever asks first: the server when all went well, or the
    request's end when the browser dropped the connection."""

    def __init__(self, body):
        self._body = body
        self._closed = False

    def __iter__(self):
        return iter(self._body)

    def close(self):
        if not self._closed:
            self._closed = True
            if hasattr(self._body, "close"):
                self._body.close()


def _closing_every_response(app, unclosed: threading.local):
    def wsgi(environ, start_response):
        unclosed.response = _Response(app(environ, start_response))
        return unclosed.response

    return wsgi


def serve_on_loopback(app, port: int = 0):
    """Serve a WSGI app from a thread on 127.0.0.1 (`port` 0: any free one); returns the server, whose
    `.port` is the port and `.shutdown()` stops it. For the demo and the tests, not for production."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    # werkzeug's dev server skips closing a response when the browser drops the connection mid-file (its
    # clean-up reads the reset socket and raises first): the file stays open until collected, warning then.
    unclosed = threading.local()

    class ClosingHandler(WSGIRequestHandler):
        def run_wsgi(self):
            try:
                super().run_wsgi()
            finally:
                response = getattr(unclosed, "response", None)
                unclosed.response = None
                if response is not None:
                    response.close()

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    wsgi = _closing_every_response(app, unclosed)
    server = make_server("127.0.0.1", port, wsgi, threaded=True, request_handler=ClosingHandler)
    # Look for shutdown() every 50 ms, not werkzeug's 0.5 s: tests and the demo stop servers often.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
