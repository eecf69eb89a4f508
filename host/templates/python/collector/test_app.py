"""Native unit test of app.py: `python3 -m unittest` (no toolchain needed).

`wasmon_sdk.testing` stands in for the host: config, state, logs and canned
capability answers.
"""

import unittest

from wasmon_sdk import testing


class CollectorTest(unittest.TestCase):
    def test_collect_reports_up_and_counts_in_state(self):
        plugin = testing.load("app", config={"site": "lab"})
        samples = plugin.collect()
        prefix = plugin.module.PREFIX
        self.assertEqual(testing.value(samples, f"{prefix}_up", site="lab"), 1.0)
        self.assertEqual(testing.value(samples, f"{prefix}_collections"), 1.0)
        samples = plugin.collect()
        self.assertEqual(testing.value(samples, f"{prefix}_collections"), 2.0)
        self.assertEqual(plugin.host.state["collections"], b"2")
        self.assertIn("site=lab", plugin.host.log_lines("info")[0])

    def test_the_count_survives_a_reload(self):
        # The host keeps the state across hot reloads: a new instance continues.
        plugin = testing.load("app", state={"collections": b"41"})
        self.assertEqual(testing.value(plugin.collect(), f"{plugin.module.PREFIX}_collections"), 42.0)

    def test_bad_config_fails_init(self):
        with self.assertRaises(testing.Err) as caught:
            testing.load("app", config={"site": ""})
        self.assertIn("[config] site", caught.exception.value.message)


if __name__ == "__main__":
    unittest.main()
