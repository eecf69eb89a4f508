"""Publishing to RabbitMQ exchanges the manifest allow-lists
(`[capabilities.rabbitmq] url = ..., exchanges = [...]`). Failures raise
`CapabilityError("rabbitmq", kind, detail)`: `not-granted`, `connection`, `rejected`.
"""

import json as _json

from . import _wit
from .errors import from_wit


def publish(exchange, routing_key, body, headers=None):
    """Publishes `body` (bytes, str, or any other value as JSON) and waits for
    the broker's confirm."""
    T = _wit.types()
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, (bytes, bytearray)):
        body = _json.dumps(body).encode("utf-8")
    labels = [T.Label(name=str(k), value=str(v)) for k, v in (headers or {}).items()]
    try:
        _wit.imports("rabbitmq").publish(exchange, routing_key, labels, bytes(body))
    except _wit.err_class() as e:
        error = from_wit("rabbitmq", e.value)
        error.args = (f"publish to {exchange!r}: {error}",)
        raise error from None
