"""Redis commands through the host, against the server the manifest names:

```toml
[capabilities.redis]
url = "redis://127.0.0.1:6379/0"
write = ["XADD"]      # writes granted by name; reads need no grant
```

`command("HGETALL", "clients")` returns the reply as plain Python values:
nil -> `None`, integer -> `int`, bulk string -> `bytes`, status -> `Status`
(a `str`), double -> `float`, boolean -> `bool`, array/set -> `list`, map ->
`dict` (unhashable keys become tuples). Failures raise `CapabilityError("redis",
kind, detail)`: `not-granted`, `forbidden-command`, `connection`, `server`,
`too-large`.
"""

from . import _wit
from .errors import from_wit


class Status(str):
    """A simple status reply such as `OK` or `PONG`."""


def command(name, *args):
    """Runs `name` (one or two words: `GET`, `CLIENT LIST`, `XINFO STREAM`)
    with `args` (str, bytes or numbers)."""
    redis = _wit.imports("redis")
    raw = [a if isinstance(a, bytes) else str(a).encode("utf-8") for a in args]
    try:
        reply = redis.command(name, raw)
    except _wit.err_class() as e:
        error = from_wit("redis", e.value)
        error.args = (f"{name}: {error}",)
        raise error from None
    return decode(reply.nodes)


def decode(nodes, at=0):
    """The tree rooted at `nodes[at]` of a flat WIT reply. A child index must
    be greater than its parent's (the host's promise); any other reads as
    `None`, so no reply can loop."""
    if at >= len(nodes):
        return None
    node = nodes[at]
    kind = type(node).__name__.split("_", 1)[-1]

    def child(i):
        return decode(nodes, i) if i > at else None

    if kind == "Nil":
        return None
    if kind == "Int":
        return int(node.value)
    if kind == "Data":
        return bytes(node.value)
    if kind == "Status":
        return Status(node.value)
    if kind == "Double":
        return float(node.value)
    if kind == "Boolean":
        return bool(node.value)
    if kind == "Array":
        return [child(i) for i in node.value]
    if kind == "Pairs":
        return {_hashable(child(k)): child(v) for k, v in node.value}
    return None


def _hashable(value):
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return value


def text(value, default=None):
    """A reply value as text: bytes decoded as UTF-8, numbers formatted."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    return default


def pairs(value):
    """Field/value pairs as a `dict` of text: a map, or an array of
    alternating fields and values (`HGETALL` in RESP2)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = zip(value[0::2], value[1::2])
    else:
        return {}
    out = {}
    for k, v in items:
        k, v = text(k), text(v)
        if k is not None and v is not None:
            out[k] = v
    return out
