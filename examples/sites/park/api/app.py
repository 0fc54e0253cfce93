"""A tiny application for the `run:` site api.test: the Python standard library only.

    python3 app.py --port 8000

GET / answers JSON with the host it was asked for and this process's id; GET /crash makes the process exit
(the server starts it again).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/crash":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # Exit once this answer is out, as an application that crashes would.
            threading.Timer(0.05, os._exit, args=(3,)).start()
            return
        body = json.dumps({"app": "api", "host": self.headers.get("Host"), "pid": os.getpid()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"api: {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    options = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
    print(f"api: listening on 127.0.0.1:{options.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
