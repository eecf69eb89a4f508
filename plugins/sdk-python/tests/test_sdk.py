"""Unit tests of wasmon_sdk, natively, against wasmon_sdk.testing's stand-ins.

Run: python3 -m unittest discover -s plugins/sdk-python/tests
"""

import datetime
import json
import os
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from wasmon_sdk import (  # noqa: E402
    CapabilityError,
    Permanent,
    PluginError,
    Retryable,
    alert,
    config,
    http,
    labels_of,
    log,
    message_json,
    message_text,
    plugin_name,
    redis,
    sample,
    severity_name,
    sql,
    state,
    testing,
)
from wasmon_sdk import rabbitmq, storage  # noqa: E402
from wasmon_sdk.redis import Status  # noqa: E402


class ValuesTest(unittest.TestCase):
    def setUp(self):
        self.host = testing.install()

    def test_sample(self):
        s = sample("queue_depth", 3, {"queue": "a"}, help="depth")
        self.assertEqual((s.name, s.value, s.help, s.timestamp_ms), ("queue_depth", 3.0, "depth", None))
        self.assertEqual(s.kind.name, "GAUGE")
        self.assertEqual(labels_of(s), {"queue": "a"})
        c = sample("jobs", 7, counter=True, timestamp_ms=1234)
        self.assertEqual((c.kind.name, c.timestamp_ms, c.labels), ("COUNTER", 1234, []))
        self.assertEqual(sample("flag", True).value, 1.0)

    def test_sample_names_the_host_rejects(self):
        for name, why in [("9lives", "not valid"), ("a-b", "not valid"), ("fooBar", "camelCase"),
                          ("wasmon_x", "host's own"), ("jobs_total", "only counters"), ("", "not valid")]:
            with self.assertRaises(ValueError, msg=name) as caught:
                sample(name, 1)
            self.assertIn(why, str(caught.exception))
        self.assertEqual(sample("jobs_total", 1, counter=True).name, "jobs_total")
        with self.assertRaises(ValueError) as caught:
            sample("jobs", -1, counter=True)
        self.assertIn("a counter is a finite number >= 0", str(caught.exception))
        self.assertEqual(sample("temperature_celsius", -3).value, -3.0)
        with self.assertRaises(ValueError):
            sample("ok", 1, {"bad-label": 1})

    def test_message_body(self):
        self.assertEqual(message_text(testing.message("héllo")), "héllo")
        self.assertEqual(message_json(testing.message(b'{"a": 1}')), {"a": 1})
        with self.assertRaises(PluginError) as caught:
            message_json(testing.message(b"nope", source="jobs"))
        self.assertIn("message from jobs is not JSON", str(caught.exception))

    def test_alert(self):
        a = alert("disk_full", "critical", "97% on /", {"mount": "/"}, 0.97)
        self.assertEqual((severity_name(a.severity), a.summary, a.value), ("critical", "97% on /", 0.97))
        self.assertEqual(labels_of(a), {"mount": "/"})
        s = sample("x", 1, {"a": "b"})
        self.assertEqual(labels_of(alert("x", "ok", "fine", s.labels)), {"a": "b"})
        with self.assertRaises(ValueError):
            alert("x", "fatal", "no such severity")


class HostTest(unittest.TestCase):
    def test_log_config_name(self):
        host = testing.install(config={"url": "http://x", "n": 3}, name="demo")
        log.info("hello")
        log.warn(42)
        self.assertEqual(host.logs, [("info", "hello"), ("warn", "42")])
        self.assertEqual(config(), {"url": "http://x", "n": 3})
        self.assertEqual(plugin_name(), "demo")

    def test_state(self):
        host = testing.install(state={"old": "v"})
        self.assertEqual(state.get("old"), b"v")
        self.assertIsNone(state.get("missing"))
        self.assertEqual(state.get_json("missing", []), [])
        state.set("s", "text")
        state.set_json("j", {"a": [1, 2]})
        self.assertEqual(state.get_str("s"), "text")
        self.assertEqual(state.get_json("j"), {"a": [1, 2]})
        self.assertEqual(sorted(state.keys()), ["j", "old", "s"])
        state.delete("old")
        state.delete("old")
        self.assertEqual(sorted(host.state), ["j", "s"])
        state.set("notjson", b"\xff")
        self.assertEqual(state.get_json("notjson", "dflt"), "dflt")

    def test_state_quota(self):
        testing.install(state_quota=16)
        state.set("a", b"123")
        with self.assertRaises(CapabilityError) as caught:
            state.set("b", b"x" * 20)
        self.assertEqual((caught.exception.capability, caught.exception.kind), ("state", "quota"))
        self.assertIn("quota of 16 bytes exceeded", str(caught.exception))


class HttpTest(unittest.TestCase):
    def setUp(self):
        self.host = testing.install()

    def test_get_and_post(self):
        self.host.http_response("http://svc/status", body=b'{"ok": true}',
                                headers={"Content-Type": "application/json"}, elapsed_us=2500)
        response = http.get("http://svc/status", headers={"accept": "application/json"}, timeout_ms=500)
        self.assertTrue(response.ok)
        self.assertEqual(response.json(), {"ok": True})
        self.assertEqual(response.header("content-type"), "application/json")
        self.assertEqual(response.elapsed_seconds, 0.0025)
        sent = self.host.requests[0]
        self.assertEqual((sent.method.name, sent.timeout_ms, sent.body), ("GET", 500, None))
        self.assertEqual(labels_of(sent.headers), {"accept": "application/json"})

        self.host.http_response("http://svc/hook", status=503, body="busy\nmore", method="POST")
        response = http.post("http://svc/hook", json={"a": 1})
        self.assertFalse(response.ok)
        self.assertEqual(self.host.requests[1].body, b'{"a": 1}')
        self.assertEqual(labels_of(self.host.requests[1].headers), {"content-type": "application/json"})
        with self.assertRaises(PluginError) as caught:
            response.raise_for_status()
        self.assertEqual(str(caught.exception), "http://svc/hook: HTTP 503: busy")

    def test_errors(self):
        for kind, detail, text in [("not-granted", "svc:80 is not in allow", "http: not-granted: svc:80"),
                                   ("timeout", "", "http: timeout"),
                                   ("too-large", "1024", "http: too-large: over the cap of 1024 bytes"),
                                   ("transport", "connection refused", "http: transport: connection refused")]:
            self.host.http_error("http://svc/", kind, detail)
            with self.assertRaises(CapabilityError) as caught:
                http.get("http://svc/")
            e = caught.exception
            self.assertEqual((e.capability, e.kind), ("http", kind))
            self.assertIn(f"GET http://svc/: {text}", str(e))
            self.assertEqual(e.retryable, kind in ("timeout", "too-large", "transport"))

    def test_raise_for_delivery(self):
        for status, outcome in [(200, None), (204, None), (429, Retryable), (503, Retryable),
                                (408, Retryable), (400, Permanent), (404, Permanent)]:
            self.host.http_response("http://sink/", status=status, body=b"why", method="POST")
            response = http.post("http://sink/", b"x")
            if outcome is None:
                self.assertIs(response.raise_for_delivery(), response)
                continue
            with self.assertRaises(outcome, msg=status) as caught:
                response.raise_for_delivery()
            self.assertEqual(str(caught.exception), f"http://sink/: HTTP {status}: why")

    def test_not_json(self):
        self.host.http_response("http://svc/", body=b"<html>")
        with self.assertRaises(PluginError) as caught:
            http.get("http://svc/").json()
        self.assertIn("http://svc/: the answer is not JSON", str(caught.exception))
        with self.assertRaises(ValueError):
            http.request("FETCH", "http://svc/")


class RedisTest(unittest.TestCase):
    def setUp(self):
        self.host = testing.install()

    def test_reply_tree(self):
        value = [1, b"two", Status("OK"), None, [2.5, True], {b"k": [b"v"]}]
        self.host.redis_reply("XRANGE", value)
        self.assertEqual(redis.command("XRANGE", "s", "-", "+", 10), value)
        self.assertEqual(self.host.redis_commands, [("XRANGE", [b"s", b"-", b"+", b"10"])])

    def test_pairs_and_text(self):
        self.host.redis_reply("HGETALL", [b"a", b"1", b"b", b"2"], args=["h"])
        self.assertEqual(redis.pairs(redis.command("HGETALL", "h")), {"a": "1", "b": "2"})
        self.assertEqual(redis.pairs({b"x": 3}), {"x": "3"})
        self.assertEqual(redis.text(b"\xffa"), "\ufffda")
        with self.assertRaises(CapabilityError) as caught:
            redis.command("HGETALL", "other")  # no canned reply for these args
        self.assertEqual(caught.exception.kind, "connection")

    def test_decode_never_loops(self):
        r = sys.modules["wit_world.imports.redis"]
        nodes = [r.Node_Array([0, 1, 7]), r.Node_Int(5)]  # self-reference and out of range
        self.assertEqual(redis.decode(nodes), [None, 5, None])

    def test_errors(self):
        self.host.redis_error("FLUSHALL", "forbidden-command", "FLUSHALL writes")
        with self.assertRaises(CapabilityError) as caught:
            redis.command("FLUSHALL")
        self.assertEqual(str(caught.exception), "FLUSHALL: redis: forbidden-command: FLUSHALL writes")


class SqlTest(unittest.TestCase):
    def test_query(self):
        host = testing.install()
        when = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc)
        host.sql_rows("jobs", ["state", "n", "at", "ok", "raw", "ratio"],
                      [("running", 3, when, True, b"\x00", 0.5), ("done", None, None, False, b"", 1.0)])
        rows = sql.query("jobs", "q1", 7, 1.5, None, True, b"\x01", when)
        self.assertEqual(rows.columns[0], "state")
        self.assertEqual(rows.rows[0], ("running", 3, when, True, b"\x00", 0.5))
        self.assertEqual(rows.dicts()[1]["n"], None)
        self.assertEqual(len(rows), 2)
        params = host.sql_queries[0][1]
        self.assertEqual([type(p).__name__ for p in params],
                         ["Value_Text", "Value_Int", "Value_Float", "Value_Null", "Value_Boolean",
                          "Value_Bytes", "Value_Timestamp"])
        self.assertEqual(params[-1].value, 1767323045000006)
        with self.assertRaises(TypeError):
            sql.query("jobs", object())
        host.sql_error("slow", "too-many-rows", "500")
        with self.assertRaises(CapabilityError) as caught:
            sql.query("slow")
        self.assertEqual(str(caught.exception), "query 'slow': sql: too-many-rows: more than the cap of 500 rows")


class OtherCapabilitiesTest(unittest.TestCase):
    def test_storage_and_rabbitmq(self):
        host = testing.install()
        host.fake("storage.health", lambda: 1500)
        self.assertEqual(storage.health(), 1500)

        def missing(bucket, key):
            raise host.error("storage", "not-found", f"{bucket}/{key}")

        host.fake("storage.head", missing)
        with self.assertRaises(CapabilityError) as caught:
            storage.head("b", "k")
        self.assertEqual(str(caught.exception), "head('b', 'k'): storage: not-found: b/k")
        with self.assertRaises(CapabilityError) as caught:
            storage.buckets()  # nothing canned: not granted
        self.assertEqual(caught.exception.kind, "not-granted")
        rabbitmq.publish("events", "a.b", {"x": 1}, headers={"h": "v"})
        self.assertEqual(host.published, [("events", "a.b", {"h": "v"}, b'{"x": 1}')])


APP = '''
from wasmon_sdk import PluginError, Permanent, Retryable, config, export_collector, export_rule, export_sink, sample, alert

class C:
    def __init__(self):
        self.mode = config().get("mode")
        if self.mode == "init":
            raise PluginError("bad config")
    def collect(self):
        if self.mode == "bug":
            return [sample("x", 1)] + None
        if self.mode == "error":
            raise PluginError("upstream down")
        if self.mode == "wrong":
            return [{"name": "x"}]
        if self.mode == "number":
            return 5
        if self.mode == "badname":
            return [sample("bad-name", 1)]
        if self.mode == "http":
            from wasmon_sdk import http
            http.get("http://nowhere/")
        return [sample("x", 1)]
    def on_message(self, message):
        return [sample("bytes", len(message.body), {"source": message.source})]

class R:
    def evaluate(self, input):
        return [alert("r", "warning", str(len(input.samples)))]

class S:
    def __init__(self):
        self.mode = config().get("mode")
    def deliver(self, batch):
        if self.mode == "permanent":
            raise Permanent("bad target")
        if self.mode == "retry":
            raise Retryable("try later")
        if self.mode == "bug":
            {}["missing"]
        if self.mode in ("denied", "timeout"):
            from wasmon_sdk import http
            http.post("http://target/", b"x")

kind = config().get("kind", "collector")
WitWorld = {"collector": export_collector(C), "rule": export_rule(R), "sink": export_sink(S)}[kind]
'''


class ExportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = tempfile.mkdtemp()
        with open(os.path.join(cls.dir, "sdk_test_app.py"), "w") as f:
            f.write(textwrap.dedent(APP))
        sys.path.insert(0, cls.dir)

    def load(self, **config):
        return testing.load("sdk_test_app", config=config)

    def test_collector(self):
        plugin = self.load()
        self.assertEqual([s.name for s in plugin.collect()], ["x"])
        samples = plugin.on_message(testing.message(b"abc", source="q"))
        self.assertEqual(testing.value(samples, "bytes", source="q"), 3.0)

    def test_plugin_error_is_the_message(self):
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="error").collect()
        self.assertEqual(caught.exception.value.message, "upstream down")
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="init")
        self.assertEqual(caught.exception.value.message, "bad config")

    def test_exception_names_type_file_line_and_logs_traceback(self):
        plugin = self.load(mode="bug")
        with self.assertRaises(testing.Err) as caught:
            plugin.collect()
        message = caught.exception.value.message
        self.assertRegex(message, r"^TypeError: can only concatenate list \(not \"NoneType\"\) to list "
                                  r"at .*sdk_test_app\.py:11 in collect$")
        errors = plugin.host.log_lines("error")
        self.assertEqual(len(errors), 1)
        self.assertIn("collect raised an unexpected exception:\nTraceback (most recent call last):", errors[0])
        self.assertIn('sdk_test_app.py", line 11, in collect', errors[0])
        self.assertNotIn("exports.py", errors[0])  # the SDK's own frames are left out

    def test_wrong_return_type_is_reported(self):
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="wrong").collect()
        self.assertIn("collect returned dict {'name': 'x'} at index 0, not a Sample", caught.exception.value.message)
        self.assertIn("wasmon_sdk.sample(...)", caught.exception.value.message)

    def test_not_a_list_and_sdk_errors_point_at_the_app(self):
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="number").collect()
        self.assertEqual(caught.exception.value.message, "collect returned int 5, not a list of Sample values")
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="badname").collect()
        self.assertRegex(caught.exception.value.message,
                         r"^ValueError: metric name 'bad-name' is not valid.* at .*sdk_test_app\.py:\d+ in collect$")

    def test_uncaught_capability_error(self):
        with self.assertRaises(testing.Err) as caught:
            self.load(mode="http").collect()
        self.assertIn("GET http://nowhere/: http: transport:", caught.exception.value.message)

    def test_rule(self):
        plugin = self.load(kind="rule")
        alerts = plugin.evaluate(testing.rule_input(samples=[sample("a", 1), sample("b", 2)]))
        self.assertEqual((alerts[0].name, alerts[0].summary), ("r", "2"))

    def test_sink(self):
        t = sys.modules["wit_world.imports.types"]
        self.assertIsNone(self.load(kind="sink").deliver([testing.event()]))
        for mode, cls, text in [("permanent", t.DeliveryError_Permanent, "bad target"),
                                ("retry", t.DeliveryError_Retryable, "try later"),
                                ("bug", t.DeliveryError_Retryable, "KeyError: 'missing' at "),
                                ("denied", t.DeliveryError_Permanent, "http: not-granted: target:80"),
                                ("timeout", t.DeliveryError_Retryable, "http: timeout")]:
            plugin = self.load(kind="sink", mode=mode)
            kind = "not-granted" if mode == "denied" else "timeout"
            plugin.host.http_error("http://target/", kind, "target:80", method="POST")
            with self.assertRaises(testing.Err, msg=mode) as caught:
                plugin.deliver([testing.event()])
            self.assertIsInstance(caught.exception.value, cls)
            self.assertIn(text, caught.exception.value.value)

    def test_export_checks_the_class(self):
        from wasmon_sdk import export_collector, export_sink
        with self.assertRaises(TypeError) as caught:
            export_collector(object)
        self.assertIn("a collector defines collect()", str(caught.exception))
        with self.assertRaises(TypeError):
            export_sink(lambda: None)


class TestingHelpersTest(unittest.TestCase):
    def test_value_lists_what_there_is(self):
        testing.install()
        with self.assertRaises(AssertionError) as caught:
            testing.value([sample("a", 1, {"x": "y"})], "b")
        self.assertIn("no b", str(caught.exception))
        self.assertIn("a{'x': 'y'}", str(caught.exception))

    def test_config_get_is_json_for_non_strings(self):
        testing.install(config={"s": "text", "n": 3, "l": [1]})
        host = sys.modules["wit_world.imports.host"]
        self.assertEqual((host.config_get("s"), host.config_get("n"), host.config_get("l")),
                         ("text", "3", "[1]"))
        self.assertIsNone(host.config_get("missing"))
        self.assertEqual(json.loads(host.config_json())["n"], 3)


if __name__ == "__main__":
    unittest.main()
