"""A stdlib-only HTTP service: GET / answers a small JSON body.

Inside the image it runs as ``python /home/bentoml/bento/src/service.py`` and listens on
0.0.0.0:$PORT (default 3000). ``svc`` is the object ``service: "service:svc"`` points at.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETING = {"message": "hello from bento-pipeline", "service": "hello"}


class HelloHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's naming
        if self.path.split("?", 1)[0] in ("/", "/healthz", "/readyz", "/livez"):
            body = json.dumps({**GREETING, "python": sys.version.split()[0]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
        else:
            body = json.dumps({"error": "not found", "path": self.path}).encode()
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("hello: " + format % args + "\n")


def make_server(host: str = "0.0.0.0", port: int | None = None) -> ThreadingHTTPServer:
    if port is None:
        port = int(os.environ.get("PORT") or 3000)
    return ThreadingHTTPServer((host, port), HelloHandler)


svc = HelloHandler


def main() -> None:
    server = make_server()
    host, port = server.server_address[:2]
    print(f"hello: listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
