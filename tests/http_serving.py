# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A loopback HTTP(S) profile server and the inventory plugin's opener, for the unit tests
of http(s) profile sources."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager

PROFILE_XML = b"<profile><lcfg><components><xen><a>%s</a></xen></components></lcfg></profile>"


@contextmanager
def serving(answer, context=None, keep_alive=False):
    """A loopback HTTP(S) server; ``answer(handler)`` gives (status, headers, body).
    ``keep_alive``: HTTP/1.1, connections kept open between requests (else HTTP/1.0, one
    request per connection).

    Yields the base URL; ``serving.paths`` lists the paths asked for, ``serving.connections``
    counts the connections the server accepted.
    """
    paths: list[str] = []
    connections = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

        def setup(self):
            connections[0] += 1
            super().setup()

        def do_GET(self):  # noqa: N802 - http.server API
            paths.append(self.path)
            status, headers, body = answer(self)
            self.send_response(status)
            for key, value in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    serving.paths = paths
    serving.connections = connections
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def opener(headers=None, client_cert=None, client_key=None, ca_path=None, use_proxy=False):
    from ansible_collections.lcfg.xen.plugins.inventory.lcfg import make_opener

    return make_opener(headers or {}, True, client_cert, client_key, ca_path, use_proxy)


@contextmanager
def raw_serving(reply):
    """A loopback HTTP/1.1 server (connections kept open) that answers each GET with the raw
    bytes ``reply(handler)`` gives: status lines, headers and bodies as written, so answers
    http.server would not send (1xx before the answer, a 304 with Transfer-Encoding, a
    trickled body) can be served. Yields the base URL; ``raw_serving.connections`` counts the
    connections accepted."""
    connections = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections[0] += 1
            super().setup()

        def do_GET(self):  # noqa: N802 - http.server API
            data = reply(self)
            if data:
                self.wfile.write(data)
                self.wfile.flush()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    raw_serving.connections = connections
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def raw_answer(status_line, headers, body=b""):
    """The bytes of one answer: ``status_line`` ("200 OK"), ``headers`` as given, ``body``."""
    head = f"HTTP/1.1 {status_line}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode() + body


def trickle(first, rest, seconds=0.2, count=25):
    """A reply writing ``first`` at once, then ``rest`` a byte every ``seconds``."""

    def reply(handler):
        handler.wfile.write(first)
        handler.wfile.flush()
        for byte in rest[:count]:
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                break
            time.sleep(seconds)
        handler.close_connection = True
        return b""

    return reply


def self_signed(tmp_path, name, alt):
    """A certificate and key for ``name`` (subjectAltName ``alt``), and a server context."""
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", f"/CN={name}", "-addext", f"subjectAltName={alt}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return cert, context
