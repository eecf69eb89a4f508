"""Unit test of the webserver_status collector, natively with canned pages:

    python3 -m unittest        (in plugins/collector-python-example)
"""

import os
import sys
import unittest

# This example uses the repository's SDK in place (a generated project has its own copy).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk-python"))

from wasmon_sdk import testing  # noqa: E402

URL = "http://127.0.0.1:8080/nginx_status"
APACHE_URL = "http://127.0.0.1:8080/server-status?auto"

NGINX = b"""Active connections: 291 
server accepts handled requests
 16630948 16630947 31070465 
Reading: 6 Writing: 179 Waiting: 106 
"""

APACHE = b"""127.0.0.1
ServerVersion: Apache/2.4.58 (Unix)
ServerMPM: event
Server Built: Oct 19 2023 10:00:00
ParentServerConfigGeneration: 1
ServerUptimeSeconds: 3600
Load1: 0.10
Total Accesses: 1234
Total kBytes: 56
Total Duration: 789
CPULoad: .00125
Uptime: 3600
ReqPerSec: .342778
BusyWorkers: 2
IdleWorkers: 73
Processes: 3
ConnsTotal: 5
ConnsAsyncWriting: 1
ConnsAsyncKeepAlive: 3
ConnsAsyncClosing: 0
Scoreboard: __W_K___R_......
"""


def load(**config):
    return testing.load("app", config={"url": URL, **config}, name="webserver_status")


class NginxTest(unittest.TestCase):
    def test_stub_status(self):
        plugin = load()
        plugin.host.http_response(URL, NGINX, elapsed_us=1200)
        samples = plugin.collect()
        v = lambda name: testing.value(samples, name, server="127.0.0.1:8080")  # noqa: E731
        self.assertEqual(v("nginx_connections_active"), 291)
        self.assertEqual(v("nginx_connections_accepted"), 16630948)
        self.assertEqual(v("nginx_connections_handled"), 16630947)
        self.assertEqual(v("nginx_http_requests"), 31070465)
        self.assertEqual((v("nginx_connections_reading"), v("nginx_connections_writing"),
                          v("nginx_connections_waiting")), (6, 179, 106))
        self.assertEqual(v("webserver_scrape_duration_seconds"), 0.0012)
        requests = testing.find(samples, "nginx_http_requests")
        self.assertEqual((requests.kind.name, requests.help), ("COUNTER", "Client requests"))
        self.assertTrue(all(s.help for s in samples))
        self.assertEqual(plugin.host.requests[0].timeout_ms, 2000)

    def test_server_label_from_config(self):
        plugin = load(server="edge-1", format="nginx")
        plugin.host.http_response(URL, NGINX)
        self.assertEqual(testing.value(plugin.collect(), "nginx_connections_active", server="edge-1"), 291)


class ApacheTest(unittest.TestCase):
    def test_server_status_auto(self):
        plugin = testing.load("app", config={"url": APACHE_URL, "server": "www"})
        plugin.host.http_response(APACHE_URL, APACHE)
        samples = plugin.collect()
        v = lambda name, **labels: testing.value(samples, name, server="www", **labels)  # noqa: E731
        self.assertEqual(v("apache_accesses"), 1234)
        self.assertEqual(v("apache_sent_bytes"), 56 * 1024)
        self.assertEqual(v("apache_uptime_seconds"), 3600)
        self.assertEqual((v("apache_workers", state="busy"), v("apache_workers", state="idle")), (2, 73))
        self.assertEqual(v("apache_connections", state="keepalive"), 3)
        self.assertEqual(v("apache_cpu_load"), 0.00125)
        self.assertEqual(v("apache_scoreboard", state="waiting"), 7)
        self.assertEqual(v("apache_scoreboard", state="open"), 6)
        self.assertEqual((v("apache_scoreboard", state="sending"), v("apache_scoreboard", state="keepalive"),
                          v("apache_scoreboard", state="reading")), (1, 1, 1))
        self.assertEqual(v("apache_scoreboard", state="closing"), 0)


class ErrorsTest(unittest.TestCase):
    def collect_error(self, plugin):
        with self.assertRaises(testing.Err) as caught:
            plugin.collect()
        return caught.exception.value.message

    def test_html_page_says_to_use_auto(self):
        plugin = load()
        plugin.host.http_response(URL, b"<!DOCTYPE html><html><body>Apache Status</body></html>")
        self.assertIn(f"{URL}: got an HTML page: for Apache use the machine-readable page "
                      "(/server-status?auto)", self.collect_error(plugin))

    def test_unknown_page(self):
        plugin = load()
        plugin.host.http_response(URL, b"hello\nworld")
        self.assertEqual(self.collect_error(plugin),
                         f"{URL}: neither nginx stub_status nor Apache server-status?auto; it starts: 'hello'")

    def test_wrong_forced_format(self):
        plugin = load(format="nginx")
        plugin.host.http_response(URL, APACHE)
        self.assertIn("not an nginx stub_status page", self.collect_error(plugin))

    def test_http_status(self):
        plugin = load()
        plugin.host.http_response(URL, b"Not Found\n", status=404)
        self.assertEqual(self.collect_error(plugin), f"{URL}: HTTP 404: Not Found")

    def test_no_answer(self):
        plugin = load()
        plugin.host.http_error(URL, "transport", "connection refused")
        self.assertEqual(self.collect_error(plugin), f"GET {URL}: http: transport: connection refused")
        plugin.host.http_error(URL, "not-granted", "127.0.0.1:8080 is not in [capabilities.http] allow")
        self.assertIn("not-granted", self.collect_error(plugin))

    def test_bad_config(self):
        for config, text in [({"url": "ftp://x"}, "[config] url must be an http(s) URL"),
                             ({"format": "iis"}, "[config] format must be one of auto, nginx, apache"),
                             ({"timeout_ms": "2s"}, "[config] timeout_ms must be a positive integer")]:
            with self.assertRaises(testing.Err) as caught:
                testing.load("app", config={"url": URL, **config})
            self.assertIn(text, caught.exception.value.message)


if __name__ == "__main__":
    unittest.main()
