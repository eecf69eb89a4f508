#!/usr/bin/env python3
"""A minimal webhook receiver for trying examples/plugins.d/webhook.toml.

Prints each envelope the webhook sink POSTs and answers 200, so deliveries
succeed. Python standard library only:

    python3 examples/webhook-receiver.py [PORT]      # default 9999
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            envelope = json.loads(body)
            for event in envelope.get("events", []):
                alert = event.get("alert") or {}
                print(
                    f"{event.get('time')} {event.get('type'):<16} {event.get('status'):<7} "
                    f"{alert.get('summary') or event.get('detail') or event.get('service') or ''}",
                    flush=True,
                )
        except ValueError:
            print(f"not JSON: {body[:200]!r}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
    print(f"listening on 127.0.0.1:{port}", flush=True)
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
