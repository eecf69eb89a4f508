"""Native unit test of app.py: `python3 -m unittest` (no toolchain needed)."""

import unittest

from wasmon_sdk import sample, severity_name, testing

CONFIG = {"metric": "queue_depth", "warn": 100, "critical": 500}


class RuleTest(unittest.TestCase):
    def evaluate(self, config, *values):
        plugin = testing.load("app", config=config)
        samples = [sample(name, value, labels) for name, value, labels in values]
        return plugin.evaluate(testing.rule_input(samples=samples, now_ms=1_700_000_000_000))

    def test_thresholds(self):
        alerts = self.evaluate(
            CONFIG,
            ("queue_depth", 7, {"queue": "a"}),
            ("queue_depth", 150, {"queue": "b"}),
            ("queue_depth", 900, {"queue": "c"}),
            ("other_metric", 10_000, {}),
        )
        self.assertEqual([severity_name(a.severity) for a in alerts], ["ok", "warning", "critical"])
        self.assertEqual([a.name for a in alerts], ["{{name}}"] * 3)
        self.assertEqual(testing.find(alerts, "{{name}}", queue="c").value, 900.0)
        self.assertEqual(alerts[1].summary, "queue_depth is 150, above the warning threshold 100 on queue=b")
        self.assertEqual(alerts[0].summary, "queue_depth is 7 on queue=a")

    def test_below(self):
        config = {"metric": "free_ratio", "direction": "below", "warn": 0.2}
        alerts = self.evaluate(config, ("free_ratio", 0.1, {}), ("free_ratio", 0.5, {"disk": "b"}))
        self.assertEqual([severity_name(a.severity) for a in alerts], ["warning", "ok"])

    def test_no_series_no_alert(self):
        self.assertEqual(self.evaluate(CONFIG), [])

    def test_bad_config_fails_init(self):
        with self.assertRaises(testing.Err) as caught:
            testing.load("app", config={"metric": "x", "warn": "high"})
        self.assertIn("[config] warn must be a number", caught.exception.value.message)


if __name__ == "__main__":
    unittest.main()
