"""Serving a WSGI app on loopback from a thread: the simulator and the web apps in the demo and the tests."""

from __future__ import annotations

import logging
import threading


def serve_on_loopback(app, port: int = 0):
    """Serve a WSGI app from a thread on 127.0.0.1 (`port` 0: any free one); returns the server, whose
    `.port` is the port and `.shutdown()` stops it. For the demo and the tests, not for production."""
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app, threaded=True)
    # Look for shutdown() every 50 ms, not werkzeug's 0.5 s: tests and the demo stop servers often.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server
