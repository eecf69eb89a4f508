"""Native unit test of app.py: `python3 -m unittest` (no toolchain needed)."""

import json
import unittest

from wasmon_sdk import testing


class SinkTest(unittest.TestCase):
    def test_deliver_logs_and_counts(self):
        plugin = testing.load("app")
        plugin.deliver([
            testing.event("service.down", id="1", source="heartbeat", service="api", severity="critical"),
            testing.event("error", id="2", detail="disk full"),
            testing.event("error", id="3"),
        ])
        self.assertEqual(json.loads(plugin.host.state["totals"]), {"service.down": 1, "error": 2})
        lines = plugin.host.log_lines("info")
        self.assertIn("service.down [critical] from heartbeat service=api", lines)
        self.assertIn("error [warning] from ingest: disk full", lines)
        self.assertEqual(lines[-1], "delivered 3 events; 3 in all")

    def test_empty_batch_is_a_no_op(self):
        plugin = testing.load("app", config={"log_each": False})
        plugin.deliver([])
        self.assertEqual(plugin.host.state, {})


if __name__ == "__main__":
    unittest.main()
