"""{{name}}: a wasmon sink in Python.

The host calls `deliver(batch)` with events (ingested events, services going
down or up, alerts changing state) that match the manifest's `events`, at
most `batch_size` at a time. Return normally once they are delivered; raise
`Retryable("...")` to get the same batch again later (the host backs off),
or `Permanent("...")` to drop it (counted as dead-lettered).

This one writes each event to the host's log and keeps running totals, per
event type, in the plugin's state (they survive hot reloads). Replace the
loop with a delivery: e.g. `http.post(url, json=...)` with
`[capabilities.http]` granted in {{name}}.toml.
"""

from wasmon_sdk import config, export_sink, log, severity_name, state


class Sink:
    def __init__(self):
        self.log_each = bool(config().get("log_each", True))

    def deliver(self, batch):
        if not batch:  # the manifest's `tick` with nothing new
            return
        totals = state.get_json("totals", {})
        for event in batch:
            totals[event.event_type] = totals.get(event.event_type, 0) + 1
            if self.log_each:
                log.info(f"{event.event_type} [{severity_name(event.severity)}] from {event.source}"
                         f"{' service=' + event.service if event.service else ''}"
                         f"{': ' + event.detail if event.detail else ''}")
        state.set_json("totals", totals)
        log.info(f"delivered {len(batch)} events; {sum(totals.values())} in all")


# componentize-py exports the class named WitWorld.
WitWorld = export_sink(Sink)
