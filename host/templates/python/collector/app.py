"""{{name}}: a wasmon collector in Python.

On every `interval` of {{name}}.toml the host calls `collect()`; the samples
it returns are served on /metrics with a `plugin="{{name}}"` label. This one
reports:

- `{{name}}_up`: 1 while the plugin runs, labelled with `[config] site`;
- `{{name}}_collections_total`: how many times it has collected, kept in the
  plugin's state, so the count survives hot reloads and restarts;
- `{{name}}_last_collect_timestamp_seconds`: when it last collected.

Replace them with what you want to measure. Host capabilities are in
`wasmon_sdk` (`http`, `redis`, `sql`, `storage`, `rabbitmq`); grant each in
{{name}}.toml, e.g. to probe a URL:

    from wasmon_sdk import http
    response = http.get(self.url)      # [capabilities.http] allow = ["host:port"]
    samples.append(sample(f"{PREFIX}_probe_duration_seconds", response.elapsed_seconds))

Raise `PluginError("...")` for an expected failure (collect() then returns
that error); any other exception is reported with its file and line, and its
traceback goes to the host's log.
"""

import time

from wasmon_sdk import PluginError, config, export_collector, log, sample, state

# Metric names are lower-case snake_case (the host rejects camelCase).
PREFIX = "{{name}}".lower()


class Collector:
    def __init__(self):
        """Runs once per instance, in the world's `init`: read and check the
        config here; raising fails the load (the previous version keeps running)."""
        cfg = config()
        self.site = cfg.get("site", "local")
        if not isinstance(self.site, str) or not self.site:
            raise PluginError(f"[config] site must be a non-empty string, not {self.site!r}")
        log.info(f"{PREFIX} collector started (site={self.site})")

    def collect(self):
        runs = state.get_json("collections", 0) + 1
        state.set_json("collections", runs)
        labels = {"site": self.site}
        return [
            sample(f"{PREFIX}_up", 1, labels, help="1 while the {{name}} collector runs"),
            sample(f"{PREFIX}_collections", runs, labels, counter=True,
                   help="collect() calls since the plugin was first installed"),
            sample(f"{PREFIX}_last_collect_timestamp_seconds", time.time(), labels,
                   help="Unix time of the last collect()"),
        ]

    def on_message(self, message):
        """Called for each message the host consumes for this collector (see
        `[capabilities.rabbitmq]`); returns samples like `collect()`."""
        return [sample(f"{PREFIX}_message_size_bytes", len(message.body), {"source": message.source},
                       help="size of the last message consumed")]


# componentize-py exports the class named WitWorld.
WitWorld = export_collector(Collector)
