"""Unit test of the service_watch rule, natively:

    python3 -m unittest        (in plugins/rule-python-example)
"""

import os
import sys
import unittest

# This example uses the repository's SDK in place (a generated project has its own copy).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk-python"))

from wasmon_sdk import labels_of, sample, severity_name, testing  # noqa: E402

NOW = 1_700_000_000_000
CHECK = {"name": "memory_high", "metric": "mem_ratio", "warn": 0.8, "critical": 0.9, "clear": 0.75,
         "raise_after": 3}


def severities(alerts, name=None):
    return [severity_name(a.severity) for a in alerts if name is None or a.name == name]


class ServicesTest(unittest.TestCase):
    def test_silent_down_fine_and_missing(self):
        plugin = testing.load("app", config={"max_silence": "90s", "services": ["api*", "worker"],
                                             "expect": ["worker", "db"]})
        services = [
            testing.service("api", up=True, last_seen_ms=NOW - 10_000),
            testing.service("api-2", up=True, last_seen_ms=NOW - 300_000),
            testing.service("worker", up=False, last_seen_ms=NOW - 5_000),
            testing.service("cron", up=False, last_seen_ms=0),  # not watched
        ]
        alerts = plugin.evaluate(testing.rule_input(services=services, now_ms=NOW))
        by = {(a.name, labels_of(a)["service"]): a for a in alerts}
        self.assertEqual(sorted(by), [("service_missing", "db"), ("service_silent", "api"),
                                      ("service_silent", "api-2"), ("service_silent", "worker")])
        self.assertEqual(severity_name(by[("service_silent", "api")].severity), "ok")
        self.assertEqual(by[("service_silent", "api-2")].summary,
                         "api-2: no heartbeat for 5m (max_silence 90s)")
        self.assertEqual(severity_name(by[("service_silent", "api-2")].severity), "critical")
        self.assertEqual(by[("service_silent", "worker")].summary, "worker is down (last heartbeat 5s ago)")
        self.assertEqual(by[("service_missing", "db")].summary, "db never sent a heartbeat")


class HysteresisTest(unittest.TestCase):
    def run_values(self, values, check=CHECK, plugin=None):
        plugin = plugin or testing.load("app", config={"checks": [check]})
        out = []
        for i, v in enumerate(values):
            alerts = plugin.evaluate(testing.rule_input(samples=[sample("mem_ratio", v, {"host": "a"})],
                                                        now_ms=NOW + i * 15_000))
            out.append(severities(alerts, "memory_high")[0])
        return out, plugin

    def test_raise_after_and_dead_band(self):
        values = [0.5, 0.85, 0.86, 0.84, 0.95, 0.95, 0.95, 0.88, 0.78, 0.76, 0.74, 0.85]
        got, _ = self.run_values(values)
        self.assertEqual(got, ["ok", "ok", "ok", "warning",     # 3 in a row beyond 0.8
                               "warning", "warning", "critical",  # 3 in a row beyond 0.9
                               "warning",                         # below critical: at once
                               "warning", "warning",              # in the dead band (>= 0.75)
                               "ok",                              # past clear
                               "ok"])                             # the streak starts over

    def test_a_dip_resets_the_streak(self):
        got, _ = self.run_values([0.85, 0.85, 0.7, 0.85, 0.85, 0.85])
        self.assertEqual(got, ["ok", "ok", "ok", "ok", "ok", "warning"])

    def test_level_survives_a_reload(self):
        _, plugin = self.run_values([0.95, 0.95, 0.95])
        saved = dict(plugin.host.state)
        reloaded = testing.load("app", config={"checks": [CHECK]}, state=saved)
        got, _ = self.run_values([0.77], plugin=reloaded)
        self.assertEqual(got, ["warning"])  # remembered critical, now in the dead band

    def test_below_and_summary(self):
        check = {"name": "memory_high", "metric": "mem_ratio", "direction": "below", "critical": 0.1}
        plugin = testing.load("app", config={"checks": [check]})
        alerts = plugin.evaluate(testing.rule_input(samples=[sample("mem_ratio", 0.05, {"host": "a"})]))
        self.assertEqual(severities(alerts), ["critical"])
        self.assertEqual(alerts[0].summary, "mem_ratio = 0.05 (below 0.1) on host=a")
        self.assertEqual(alerts[0].value, 0.05)

    def test_state_forgets_gone_series(self):
        _, plugin = self.run_values([0.85])
        self.assertIn(b"memory_high|host=a", plugin.host.state["levels"])
        plugin.evaluate(testing.rule_input(samples=[]))
        self.assertEqual(plugin.host.state["levels"], b"{}")


class ConfigTest(unittest.TestCase):
    def test_errors_name_the_key(self):
        for config, text in [
            ({"max_silence": "soon"}, "[config] max_silence = 'soon' is not a duration"),
            ({"severity": "page"}, "[config] severity must be"),
            ({"checks": [{"warn": 1}]}, "[[config.checks]] #1: `metric` is missing"),
            ({"checks": [{"metric": "m"}]}, "set `warn`, `critical` or both"),
            ({"checks": [{"metric": "m", "warn": 0.8, "clear": 0.9}]}, "clear = 0.9 must be on the ok side"),
            ({"checks": [{"metric": "m", "warn": 1, "raise_after": 0}]}, "raise_after must be an integer"),
            ({"services": "api"}, None),
        ]:
            if text is None:
                testing.load("app", config=config)
                continue
            with self.assertRaises(testing.Err, msg=text) as caught:
                testing.load("app", config=config)
            self.assertIn(text, caught.exception.value.message)

    def test_durations(self):
        import watch
        self.assertEqual(watch.duration_seconds("1h30m", "k"), 5400)
        self.assertEqual(watch.duration_seconds("500ms", "k"), 0.5)
        self.assertEqual(watch.duration_seconds(15, "k"), 15)
        with self.assertRaises(watch.ConfigError):
            watch.duration_seconds("5 parsecs", "k")


if __name__ == "__main__":
    unittest.main()
