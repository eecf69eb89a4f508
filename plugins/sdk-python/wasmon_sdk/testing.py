"""Run a plugin's `app.py` natively, with plain `python3 -m unittest`.

componentize-py generates `wit_world` and `componentize_py_types` only while
it builds the component. `install()` puts stand-ins for them in `sys.modules`
(same class, field and function names as the generated ones, for
`wasmon:plugin@0.2.0`), backed by a `FakeHost` that records log lines, serves
`[config]`, keeps state in memory and answers capability calls from canned
responses:

```python
import unittest
from wasmon_sdk import testing

class AppTest(unittest.TestCase):
    def test_collect(self):
        plugin = testing.load("app", config={"url": "http://127.0.0.1:8080/status"})
        plugin.host.http_response("http://127.0.0.1:8080/status", body=b"ok")
        samples = plugin.collect()
        self.assertEqual(testing.value(samples, "demo_up"), 1.0)
```

`load` imports the module afresh each time (module-level state starts over)
and calls the world's `init`, through the same guards as in the component:
an export's error arrives as `testing.Err` whose `.value` is the WIT error.
"""

import dataclasses
import enum
import importlib
import json
import sys
import types as _pytypes
import typing

from . import redis as _redis
from . import sql as _sql

_HOST = None  # the FakeHost the stand-in functions use


# ---------------------------------------------------------------------------
# Stand-ins for the generated modules.


@dataclasses.dataclass(frozen=True)
class Err(Exception):
    """componentize-py's `Err`: the error case of a WIT `result`."""

    value: typing.Any


@dataclasses.dataclass
class Ok:
    value: typing.Any


@dataclasses.dataclass
class Some:
    value: typing.Any


def _records(module, spec):
    for name, fields in spec.items():
        cls = dataclasses.make_dataclass(name, [(f, typing.Any) for f in fields])
        cls.__module__ = module.__name__
        setattr(module, name, cls)


def _variant(module, union, cases):
    """`Union_Case` classes (a `value` field unless the case has none)."""
    for case, has_value in cases.items():
        name = f"{union}_{case}"
        cls = dataclasses.make_dataclass(name, [("value", typing.Any)] if has_value else [])
        cls.__module__ = module.__name__
        setattr(module, name, cls)
    members = tuple(getattr(module, union + "_" + case) for case in cases)
    setattr(module, union, typing.Union[members])


def _enum(module, name, members):
    cls = enum.Enum(name, {m: i for i, m in enumerate(members)})
    cls.__module__ = module.__name__
    setattr(module, name, cls)


def _module(name):
    module = _pytypes.ModuleType(name, "wasmon_sdk.testing stand-in for componentize-py bindings")
    sys.modules[name] = module
    return module


def _build_modules():
    cpt = _module("componentize_py_types")
    cpt.Err, cpt.Ok, cpt.Some = Err, Ok, Some
    cpt.Result = typing.Union[Ok, Err]

    world = _module("wit_world")
    imports = _module("wit_world.imports")
    world.imports = imports

    class WitWorld:
        """Stand-in for the generated `wit_world.WitWorld` protocol."""

    world.WitWorld = WitWorld

    t = _module("wit_world.imports.types")
    _enum(t, "MetricKind", ["GAUGE", "COUNTER"])
    _enum(t, "Severity", ["OK", "WARNING", "CRITICAL"])
    _enum(t, "AlertState", ["PENDING", "FIRING", "RESOLVED"])
    _records(t, {
        "Label": ["name", "value"],
        "Sample": ["name", "kind", "labels", "value", "help", "timestamp_ms"],
        "Error": ["message"],
        "Message": ["source", "routing_key", "headers", "body", "received_ms"],
        "Alert": ["name", "labels", "severity", "summary", "value"],
        "ServiceState": ["name", "up", "last_seen_ms", "phase"],
        "AlertChange": ["rule", "name", "labels", "severity", "state", "summary", "value",
                        "active_since_ms"],
        "Event": ["id", "time_ms", "event_type", "source", "service", "component", "severity",
                  "detail", "attributes", "alert"],
        "RuleInput": ["now_ms", "samples", "services", "events"],
    })
    _variant(t, "DeliveryError", {"Retryable": True, "Permanent": True})

    h = _module("wit_world.imports.host")
    _enum(h, "Level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"])
    for fn in ("log", "plugin_name", "config_json", "config_get", "state_get", "state_set",
               "state_delete", "state_keys"):
        setattr(h, fn, _dispatch("host." + fn))

    http = _module("wit_world.imports.http")
    _enum(http, "Method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    _records(http, {
        "Request": ["method", "url", "headers", "body", "timeout_ms"],
        "Response": ["status", "headers", "body", "elapsed_us"],
    })
    _variant(http, "HttpError", {"NotGranted": True, "InvalidRequest": True, "Timeout": False,
                                 "Transport": True, "TooLarge": True})
    http.send = _dispatch("http.send")

    r = _module("wit_world.imports.redis")
    _variant(r, "Node", {"Nil": False, "Int": True, "Data": True, "Status": True, "Double": True,
                         "Boolean": True, "Array": True, "Pairs": True})
    _records(r, {"Reply": ["nodes"]})
    _variant(r, "RedisError", {"NotGranted": True, "ForbiddenCommand": True, "Connection": True,
                               "Server": True, "TooLarge": True})
    r.command = _dispatch("redis.command")

    s = _module("wit_world.imports.sql")
    _variant(s, "Value", {"Null": False, "Boolean": True, "Int": True, "Float": True, "Text": True,
                          "Bytes": True, "Timestamp": True})
    _records(s, {"Rows": ["columns", "rows"]})
    _variant(s, "SqlError", {"NotGranted": True, "Connection": True, "Query": True,
                             "TooManyRows": True, "Timeout": True})
    s.query = _dispatch("sql.query")

    st = _module("wit_world.imports.storage")
    _records(st, {
        "Bucket": ["name", "created_ms"],
        "BucketUsage": ["bucket", "objects", "bytes", "truncated"],
        "ObjectInfo": ["size", "etag", "last_modified_ms", "content_type"],
    })
    _variant(st, "StorageError", {"NotGranted": True, "Connection": True, "Auth": True,
                                  "NotFound": True, "Server": True, "TooLarge": True})
    for fn in ("health", "buckets", "bucket_stats", "head"):
        setattr(st, fn, _dispatch("storage." + fn))

    mq = _module("wit_world.imports.rabbitmq")
    _variant(mq, "AmqpError", {"NotGranted": True, "Connection": True, "Rejected": True})
    mq.publish = _dispatch("rabbitmq.publish")

    for name in ("types", "host", "http", "redis", "sql", "storage", "rabbitmq"):
        setattr(imports, name, sys.modules["wit_world.imports." + name])


def _dispatch(name):
    def call(*args):
        if _HOST is None:
            raise RuntimeError(f"{name} called with no FakeHost: call wasmon_sdk.testing.install() first")
        return _HOST._call(name, args)

    call.__name__ = name.split(".")[-1]
    call.__module__ = "wit_world.imports." + name.split(".")[0]
    return call


def _imports(name):
    return sys.modules["wit_world.imports." + name]


# ---------------------------------------------------------------------------
# The fake host.


class FakeHost:
    """What the stand-in imports answer from. Attributes tests read or set:

    - `config` (dict), `name` (the plugin name);
    - `logs`: `(level, message)` pairs, level `"info"`, `"error"`...;
    - `state`: `dict` of key -> bytes; `state_quota`: bytes (None: no limit);
    - `requests`: every `http.Request` sent; `published`: every
      `(exchange, routing_key, headers dict, body)` published;
    - `redis_commands`, `sql_queries`: every `(name, args)` run.

    Canned answers: `http_response`, `http_error`, `redis_reply`,
    `redis_error`, `sql_rows`, `sql_error`, and `fake(name, fn)` to replace
    any import (e.g. `fake("storage.health", lambda: 1500)`).
    """

    def __init__(self, config=None, name="plugin", state=None, state_quota=None):
        self.config = dict(config or {})
        self.name = name
        self.logs = []
        self.state = {k: v.encode() if isinstance(v, str) else bytes(v) for k, v in (state or {}).items()}
        self.state_quota = state_quota
        self.requests = []
        self.published = []
        self.redis_commands = []
        self.sql_queries = []
        self._http = {}
        self._redis = {}
        self._sql = {}
        self._fakes = {}

    # -- what tests read ---------------------------------------------------

    def log_lines(self, level=None):
        """The logged messages (of one level, e.g. `"error"`, when given)."""
        return [m for lvl, m in self.logs if level is None or lvl == level]

    # -- canned answers ------------------------------------------------------

    def http_response(self, url, body=b"", status=200, headers=None, method="GET", elapsed_us=1500):
        """Answers `method url` with this response (every time)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, (bytes, bytearray)):
            body = json.dumps(body).encode("utf-8")
        T = _imports("types")
        response = _imports("http").Response(
            status=status,
            headers=[T.Label(name=k, value=str(v)) for k, v in (headers or {}).items()],
            body=bytes(body),
            elapsed_us=elapsed_us,
        )
        self._http[(method.upper(), url)] = response

    def http_error(self, url, kind, detail="", method="GET"):
        """Fails `method url` with the `HttpError` case `kind`: `not-granted`,
        `invalid-request`, `timeout`, `transport`, `too-large`."""
        self._http[(method.upper(), url)] = self.error("http", kind, detail)

    def redis_reply(self, command, value, args=None):
        """Answers `command` (with exactly `args`, when given) with `value`, a
        Python reply tree (see `wasmon_sdk.redis`)."""
        key = (command.upper(), None if args is None else tuple(_bytes(a) for a in args))
        self._redis[key] = _imports("redis").Reply(nodes=encode_redis(value))

    def redis_error(self, command, kind, detail="", args=None):
        key = (command.upper(), None if args is None else tuple(_bytes(a) for a in args))
        self._redis[key] = self.error("redis", kind, detail)

    def sql_rows(self, query, columns, rows):
        """Answers the named query with `columns` and `rows` of Python values."""
        self._sql[query] = _imports("sql").Rows(
            columns=list(columns), rows=[[_sql.to_value(v) for v in row] for row in rows])

    def sql_error(self, query, kind, detail=""):
        self._sql[query] = self.error("sql", kind, detail)

    def fake(self, name, fn):
        """Replaces the import `name` (`"storage.health"`, `"http.send"`...) with `fn`."""
        self._fakes[name] = fn

    def error(self, capability, kind, detail=""):
        """The `Err` a capability raises: `error("http", "timeout")`."""
        unions = {"http": ("http", "HttpError"), "redis": ("redis", "RedisError"),
                  "sql": ("sql", "SqlError"), "storage": ("storage", "StorageError"),
                  "rabbitmq": ("rabbitmq", "AmqpError")}
        module, union = unions[capability]
        case = "".join(part.capitalize() for part in kind.split("-"))
        cls = getattr(_imports(module), f"{union}_{case}", None)
        if cls is None:
            raise ValueError(f"{capability} has no error kind {kind!r}")
        if not dataclasses.fields(cls):
            return Err(cls())
        if case in ("TooLarge", "TooManyRows"):
            return Err(cls(int(detail or 0)))
        return Err(cls(detail))

    # -- the imports ---------------------------------------------------------

    def _call(self, name, args):
        if name in self._fakes:
            return self._fakes[name](*args)
        method = getattr(self, "_" + name.replace(".", "_"), None)
        if method is None:
            raise self.error(name.split(".")[0], "not-granted",
                             f"testing: no canned answer for {name}; use FakeHost.fake({name!r}, fn)")
        return method(*args)

    def _host_log(self, level, message):
        self.logs.append((level.name.lower(), message))

    def _host_plugin_name(self):
        return self.name

    def _host_config_json(self):
        return json.dumps(self.config)

    def _host_config_get(self, key):
        if key not in self.config:
            return None
        value = self.config[key]
        return value if isinstance(value, str) else json.dumps(value)

    def _host_state_get(self, key):
        return self.state.get(key)

    def _host_state_set(self, key, value):
        if self.state_quota is not None:
            total = sum(len(k) + len(v) for k, v in self.state.items() if k != key)
            if total + len(key) + len(value) > self.state_quota:
                raise Err(_imports("types").Error(
                    message=f"state quota of {self.state_quota} bytes exceeded: key {key!r}"))
        self.state[key] = bytes(value)

    def _host_state_delete(self, key):
        self.state.pop(key, None)

    def _host_state_keys(self):
        return list(self.state)

    def _http_send(self, request):
        self.requests.append(request)
        answer = self._http.get((request.method.name, request.url))
        if answer is None:
            raise self.error("http", "transport",
                             f"testing: no canned response for {request.method.name} {request.url}; "
                             "add one with host.http_response(url, body)")
        if isinstance(answer, Err):
            raise answer
        return answer

    def _redis_command(self, name, args):
        self.redis_commands.append((name, list(args)))
        answer = self._redis.get((name.upper(), tuple(bytes(a) for a in args)))
        if answer is None:
            answer = self._redis.get((name.upper(), None))
        if answer is None:
            raise self.error("redis", "connection",
                             f"testing: no canned reply for {name}; add one with host.redis_reply()")
        if isinstance(answer, Err):
            raise answer
        return answer

    def _sql_query(self, name, params):
        self.sql_queries.append((name, list(params)))
        answer = self._sql.get(name)
        if answer is None:
            raise self.error("sql", "not-granted",
                             f"testing: no query {name!r}; add one with host.sql_rows()")
        if isinstance(answer, Err):
            raise answer
        return answer

    def _rabbitmq_publish(self, exchange, routing_key, headers, body):
        self.published.append((exchange, routing_key, {h.name: h.value for h in headers}, bytes(body)))


def _bytes(value):
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def encode_redis(value):
    """A flat WIT node list from a Python reply tree (the inverse of
    `wasmon_sdk.redis.decode`); children come after their parent."""
    r = _imports("redis")
    nodes = []

    def add(v):
        at = len(nodes)
        nodes.append(None)
        if v is None:
            nodes[at] = r.Node_Nil()
        elif isinstance(v, bool):
            nodes[at] = r.Node_Boolean(v)
        elif isinstance(v, int):
            nodes[at] = r.Node_Int(v)
        elif isinstance(v, float):
            nodes[at] = r.Node_Double(v)
        elif isinstance(v, _redis.Status):
            nodes[at] = r.Node_Status(str(v))
        elif isinstance(v, (bytes, str)):
            nodes[at] = r.Node_Data(_bytes(v))
        elif isinstance(v, dict):
            nodes[at] = r.Node_Pairs([(add(k), add(x)) for k, x in v.items()])
        else:
            nodes[at] = r.Node_Array([add(x) for x in v])
        return at

    add(value)
    return nodes


# ---------------------------------------------------------------------------
# Entry points.


def install(config=None, name="plugin", state=None, state_quota=None):
    """Installs the stand-in modules (once) and a fresh `FakeHost`, returned."""
    global _HOST
    current = sys.modules.get("wit_world")
    if current is None or not (current.__doc__ or "").startswith("wasmon_sdk.testing"):
        _build_modules()
    _HOST = FakeHost(config=config, name=name, state=state, state_quota=state_quota)
    return _HOST


class Plugin:
    """A loaded plugin: `world` (its `WitWorld` instance), `host` (the
    `FakeHost`), `module`, and the exports: `collect()`, `on_message(msg)`,
    `evaluate(input)`, `deliver(batch)`."""

    def __init__(self, module, world, host):
        self.module = module
        self.world = world
        self.host = host

    def init(self):
        return self.world.init()

    def collect(self):
        return self.world.collect()

    def on_message(self, message):
        return self.world.on_message(message)

    def evaluate(self, input):
        return self.world.evaluate(input)

    def deliver(self, batch):
        return self.world.deliver(list(batch))


def load(module="app", config=None, name=None, state=None, state_quota=None, init=True):
    """Installs a fresh `FakeHost`, imports `module` afresh and, unless
    `init=False`, calls its `init`. The plugin name defaults to the module's."""
    host = install(config=config, name=name or module, state=state, state_quota=state_quota)
    sys.modules.pop(module, None)
    mod = importlib.import_module(module)
    cls = getattr(mod, "WitWorld", None)
    if cls is None:
        raise AssertionError(f"{module}.py defines no WitWorld: end it with "
                             "`WitWorld = export_collector(MyClass)` (or export_rule/export_sink)")
    plugin = Plugin(mod, cls(), host)
    if init:
        plugin.init()
    return plugin


# ---------------------------------------------------------------------------
# Builders and lookups for tests.


def _labels(labels):
    T = _imports("types")
    return [T.Label(name=str(k), value=str(v)) for k, v in (labels or {}).items()]


def message(body, source="queue", routing_key="", headers=None, received_ms=0):
    """A `types.Message` as the host hands one to `on_message`."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return _imports("types").Message(source=source, routing_key=routing_key, headers=_labels(headers),
                                     body=bytes(body), received_ms=received_ms)


def service(name, up=True, last_seen_ms=0, phase=None):
    """A `types.ServiceState` (for `rule_input(services=...)`)."""
    return _imports("types").ServiceState(name=name, up=up, last_seen_ms=last_seen_ms, phase=phase)


def rule_input(samples=(), services=(), events=(), now_ms=0):
    """A `types.RuleInput` for `evaluate`."""
    return _imports("types").RuleInput(now_ms=now_ms, samples=list(samples), services=list(services),
                                       events=list(events))


def event(event_type="error", id="e1", time_ms=0, source="ingest", service=None, component=None,
          severity="warning", detail=None, attributes=None, alert=None):
    """A `types.Event` for `deliver`."""
    T = _imports("types")
    return T.Event(id=id, time_ms=time_ms, event_type=event_type, source=source, service=service,
                   component=component, severity=T.Severity[severity.upper()], detail=detail,
                   attributes=_labels(attributes), alert=alert)


def find(samples, name, **labels):
    """The first sample (or alert) called `name` whose labels include `labels`, or None."""
    for s in samples:
        have = {label.name: label.value for label in s.labels}
        if s.name == name and all(have.get(k) == str(v) for k, v in labels.items()):
            return s
    return None


def value(samples, name, **labels):
    """`find(...).value`; an AssertionError listing what there is when none matches."""
    found = find(samples, name, **labels)
    if found is None:
        there = ", ".join(f"{s.name}{ {lb.name: lb.value for lb in s.labels} }" for s in samples)
        raise AssertionError(f"no {name} {labels or ''} among: {there or 'nothing'}")
    return found.value
