"""Outbound HTTP through the host, to the hosts the manifest allow-lists:

```toml
[capabilities.http]
allow = ["127.0.0.1:8080", "*.example.com"]
timeout = "2s"
max_response_bytes = "1MiB"
```

`get(url)` / `post(url, ...)` / `request(method, url, ...)` return a
`Response`; a failure with no answer raises `CapabilityError("http", kind,
detail)` with kind `not-granted`, `invalid-request`, `timeout`, `transport` or
`too-large`. An HTTP error status is an answer, not an exception: check
`response.ok` or call `response.raise_for_status()`.
"""

import json as _json

from . import _wit
from .errors import Permanent, PluginError, Retryable, from_wit

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class Response:
    """An HTTP answer: `status`, `headers` (dict, lower-case names), `body`
    (bytes), `elapsed_us` (request sent to body read, microseconds), `url`."""

    def __init__(self, url, status, headers, body, elapsed_us):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed_us = elapsed_us

    @property
    def ok(self):
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    @property
    def elapsed_seconds(self):
        return self.elapsed_us / 1_000_000

    def header(self, name, default=None):
        """A header's value (case-insensitive), or `default`."""
        return self.headers.get(name.lower(), default)

    def text(self):
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON; a `PluginError` naming the URL when it is not."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise PluginError(f"{self.url}: the answer is not JSON ({e}): {excerpt(self.body)}") from None

    def raise_for_status(self):
        """Raises a `PluginError` naming the URL, the status and the start of
        the body unless the status is 2xx; returns the response otherwise."""
        if not self.ok:
            raise PluginError(f"{self.url}: HTTP {self.status}: {excerpt(self.body)}")
        return self

    def raise_for_delivery(self):
        """For sinks: returns the response when the status is 2xx; raises
        `Retryable` for 408, 429 and 5xx (the host retries the batch later)
        and `Permanent` for any other status (the batch is dead-lettered)."""
        if self.ok:
            return self
        message = f"{self.url}: HTTP {self.status}: {excerpt(self.body)}"
        if self.status in (408, 429) or 500 <= self.status < 600:
            raise Retryable(message)
        raise Permanent(message)

    def __repr__(self):
        return f"<Response {self.status} {self.url} {len(self.body)} bytes>"


def excerpt(body, limit=200):
    """The first non-empty line of `body`, cut at `limit` characters: for messages."""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[:limit] + "..."
    return "(empty body)"


def request(method, url, *, headers=None, body=None, json=None, timeout_ms=None):
    """Sends one request. `headers` is a dict; `body` bytes or str; `json` a
    value sent as JSON (with `content-type: application/json`); `timeout_ms`
    is capped by the manifest's timeout and the call's time budget."""
    http = _wit.imports("http")
    T = _wit.types()
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"HTTP method {method!r} is not one of {', '.join(METHODS)}")
    headers = dict(headers or {})
    if json is not None:
        body = _json.dumps(json).encode("utf-8")
        if not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = "application/json"
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = http.Request(
        method=http.Method[method],
        url=url,
        headers=[T.Label(name=str(k), value=str(v)) for k, v in headers.items()],
        body=None if body is None else bytes(body),
        timeout_ms=None if timeout_ms is None else int(timeout_ms),
    )
    try:
        answer = http.send(req)
    except _wit.err_class() as e:
        error = from_wit("http", e.value)
        error.args = (f"{method} {url}: {error}",)
        raise error from None
    return Response(
        url=url,
        status=answer.status,
        headers={h.name.lower(): h.value for h in answer.headers},
        body=bytes(answer.body),
        elapsed_us=answer.elapsed_us,
    )


def get(url, **kwargs):
    """`request("GET", url, ...)`."""
    return request("GET", url, **kwargs)


def head(url, **kwargs):
    """`request("HEAD", url, ...)`."""
    return request("HEAD", url, **kwargs)


def post(url, body=None, **kwargs):
    """`request("POST", url, body=..., ...)`; pass `json=value` to send JSON."""
    return request("POST", url, body=body, **kwargs)


def put(url, body=None, **kwargs):
    """`request("PUT", url, body=..., ...)`."""
    return request("PUT", url, body=body, **kwargs)
