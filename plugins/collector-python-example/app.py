"""webserver_status: nginx `stub_status` and Apache `server-status?auto`
metrics, read through wasmon's http capability.

Samples (each with `server`, and the host's `plugin` label), named like the
nginx and Apache Prometheus exporters' so their dashboards apply:

- nginx: `nginx_connections_active`, `nginx_connections_reading`,
  `nginx_connections_writing`, `nginx_connections_waiting` (gauges),
  `nginx_connections_accepted_total`, `nginx_connections_handled_total`,
  `nginx_http_requests_total` (counters);
- Apache: `apache_accesses_total`, `apache_sent_bytes_total`,
  `apache_uptime_seconds_total`, `apache_workers{state="busy"|"idle"}`,
  `apache_scoreboard{state}`, `apache_connections{state}`, `apache_cpu_load`;
- both: `webserver_scrape_duration_seconds` (the request's round trip).

A failed fetch or an unreadable page makes collect() return an error that
names the URL and what went wrong (see `wasmon plugin run`, and
`last_error` in /api/plugins/NAME); the host counts it in
`wasmon_plugin_calls_total` and backs off after repeated failures.
"""

from urllib.parse import urlsplit

from wasmon_sdk import PluginError, config, export_collector, http, log, sample

import status


class WebserverStatus:
    def __init__(self):
        cfg = config()
        self.url = cfg.get("url")
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise PluginError(f"[config] url must be an http(s) URL of the status page, not {self.url!r}")
        self.format = cfg.get("format", "auto")
        if self.format not in status.FORMATS:
            raise PluginError(f"[config] format must be one of {', '.join(status.FORMATS)}, not {self.format!r}")
        self.server = cfg.get("server") or urlsplit(self.url).netloc
        self.timeout_ms = cfg.get("timeout_ms", 2000)
        if isinstance(self.timeout_ms, bool) or not isinstance(self.timeout_ms, int) or self.timeout_ms <= 0:
            raise PluginError(f"[config] timeout_ms must be a positive integer, not {self.timeout_ms!r}")
        log.info(f"reading {self.format} status from {self.url} as server={self.server}")

    def collect(self):
        response = http.get(self.url, timeout_ms=self.timeout_ms).raise_for_status()
        text = response.text()
        try:
            kind = status.detect(text) if self.format == "auto" else self.format
            samples = self.nginx(text) if kind == "nginx" else self.apache(text)
        except status.ParseError as e:
            raise PluginError(f"{self.url}: {e}") from None
        samples.append(self.gauge("webserver_scrape_duration_seconds", response.elapsed_seconds,
                                  "Time to fetch the status page"))
        return samples

    def gauge(self, name, value, help, **labels):
        return sample(name, value, {"server": self.server, **labels}, help=help)

    def counter(self, name, value, help, **labels):
        return sample(name, value, {"server": self.server, **labels}, counter=True, help=help)

    def nginx(self, text):
        v = status.parse_nginx(text)
        return [
            self.gauge("nginx_connections_active", v["active"], "Active client connections, waiting ones included"),
            self.gauge("nginx_connections_reading", v["reading"], "Connections reading the request header"),
            self.gauge("nginx_connections_writing", v["writing"], "Connections writing the response"),
            self.gauge("nginx_connections_waiting", v["waiting"], "Idle keep-alive connections"),
            self.counter("nginx_connections_accepted", v["accepted"], "Accepted client connections"),
            self.counter("nginx_connections_handled", v["handled"], "Handled client connections"),
            self.counter("nginx_http_requests", v["requests"], "Client requests"),
        ]

    def apache(self, text):
        v = status.parse_apache(text)
        out = []
        number = lambda key: v.get(key) if isinstance(v.get(key), float) else None  # noqa: E731
        for key, name, help in [
            ("Total Accesses", "apache_accesses", "Requests served"),
            ("ServerUptimeSeconds", "apache_uptime_seconds", "Seconds since the server started"),
        ]:
            if number(key) is not None:
                out.append(self.counter(name, number(key), help))
        if number("Total kBytes") is not None:
            out.append(self.counter("apache_sent_bytes", number("Total kBytes") * 1024, "Bytes sent"))
        for key, state in [("BusyWorkers", "busy"), ("IdleWorkers", "idle")]:
            if number(key) is not None:
                out.append(self.gauge("apache_workers", number(key), "Workers by state", state=state))
        for key, state in [("ConnsTotal", "total"), ("ConnsAsyncWriting", "writing"),
                           ("ConnsAsyncKeepAlive", "keepalive"), ("ConnsAsyncClosing", "closing")]:
            if number(key) is not None:
                out.append(self.gauge("apache_connections", number(key), "Connections by state (event MPM)",
                                      state=state))
        if number("CPULoad") is not None:
            out.append(self.gauge("apache_cpu_load", number("CPULoad"), "CPU load of the server (0-1 per core)"))
        for state, count in v.get("Scoreboard", {}).items():
            out.append(self.gauge("apache_scoreboard", count, "Worker slots by scoreboard state", state=state))
        return out


WitWorld = export_collector(WebserverStatus)
