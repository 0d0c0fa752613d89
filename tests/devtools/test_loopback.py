"""The loopback server the demo and the tests serve the apps with."""

import gc
import socket
import struct
import time
from pathlib import Path

from flask import Flask, send_file

from devtools.loopback import serve_on_loopback

LEAFLET = Path(__file__).resolve().parents[2] / "flask_front_end/static/vendor/leaflet/leaflet.js"


def test_a_browser_that_drops_a_file_half_read_leaves_no_file_open():
    # A browser that navigates away drops the files it was still loading; werkzeug's dev server then
    # skipped closing the response, and the open file warned later, failing whichever test was running.
    app = Flask(__name__)
    app.get("/leaflet.js")(lambda: send_file(LEAFLET))
    server = serve_on_loopback(app)
    try:
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", server.port)) as browser:
                browser.sendall(b"GET /leaflet.js HTTP/1.1\r\nHost: loopback\r\n\r\n")
                assert browser.recv(100).startswith(b"HTTP/1.1 200")
                # Close with a reset, as a browser dropping a connection does.
                browser.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.3)
        gc.collect()  # an open file warns (an error here) when collected
    finally:
        server.shutdown()
