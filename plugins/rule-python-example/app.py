"""service_watch: a wasmon rule in Python that watches heartbeats and
thresholds, with hysteresis.

1. Services: each service known from heartbeats (`POST /heartbeat`) whose
   name matches `[config] services` is `service_silent` (severity
   `[config] severity`, default critical) when it reported down or its last
   heartbeat is older than `max_silence`; each name in `expect` that never
   sent one is `service_missing`.
2. Checks: each `[[config.checks]]` compares a metric with `warn` and
   `critical`, one alert per series. A severity rises only after
   `raise_after` evaluations in a row beyond its threshold, and falls back
   to ok only once the value is past `clear` (a dead band against
   flapping). Each series' level is kept in the plugin's state, so a hot
   reload continues where the previous version stopped.

The host still owns the alert life cycle (pending, firing after the
manifest's `for`, resolved): this rule decides each evaluation's severity.
"""

from wasmon_sdk import PluginError, alert, config, export_rule, labels_of, state

import watch

STATE_KEY = "levels"


class ServiceWatch:
    def __init__(self):
        cfg = config()
        try:
            self.max_silence_ms = watch.duration_seconds(cfg.get("max_silence", "60s"), "max_silence") * 1000
            self.services = _strings(cfg, "services", ["*"])
            self.expect = _strings(cfg, "expect", [])
            self.severity = cfg.get("severity", "critical")
            if self.severity not in ("warning", "critical"):
                raise watch.ConfigError("[config] severity must be \"warning\" or \"critical\"")
            checks = cfg.get("checks", [])
            if not isinstance(checks, list):
                raise watch.ConfigError("[config] checks must be an array of tables ([[config.checks]])")
            self.checks = [watch.Check(raw, i) for i, raw in enumerate(checks)]
        except watch.ConfigError as e:
            raise PluginError(str(e)) from None

    def evaluate(self, input):
        return self.services_alerts(input) + self.check_alerts(input)

    def services_alerts(self, input):
        alerts = []
        seen = set()
        for svc in input.services:
            if not watch.matches(self.services, svc.name):
                continue
            seen.add(svc.name)
            silent_ms = max(0, input.now_ms - svc.last_seen_ms)
            labels = {"service": svc.name}
            if not svc.up:
                alerts.append(alert("service_silent", self.severity,
                                    f"{svc.name} is down (last heartbeat {_ago(silent_ms)} ago)",
                                    labels, silent_ms / 1000))
            elif silent_ms > self.max_silence_ms:
                alerts.append(alert("service_silent", self.severity,
                                    f"{svc.name}: no heartbeat for {_ago(silent_ms)} "
                                    f"(max_silence {_ago(self.max_silence_ms)})", labels, silent_ms / 1000))
            else:
                alerts.append(alert("service_silent", "ok", f"{svc.name} last seen {_ago(silent_ms)} ago",
                                    labels, silent_ms / 1000))
        for name in self.expect:
            if name not in seen:
                alerts.append(alert("service_missing", self.severity,
                                    f"{name} never sent a heartbeat", {"service": name}))
        return alerts

    def check_alerts(self, input):
        memory = state.get_json(STATE_KEY, {})
        alerts = []
        current = set()
        for check in self.checks:
            for s in input.samples:
                if s.name != check.metric:
                    continue
                labels = labels_of(s)
                key = check.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
                current.add(key)
                level = check.step(s.value, memory.setdefault(key, {}))
                where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
                limit = check.threshold(level)
                summary = f"{check.metric} = {s.value:g}"
                if level != "ok":
                    summary += f" ({check.direction} {limit:g})"
                if where:
                    summary += f" on {where}"
                alerts.append(alert(check.name, level, summary, labels, s.value))
        # Forget series that are gone, so the state stays small.
        memory = {k: v for k, v in memory.items() if k in current}
        state.set_json(STATE_KEY, memory)
        return alerts


def _strings(cfg, key, default):
    value = cfg.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise watch.ConfigError(f"[config] {key} must be a list of strings")
    return value


def _ago(ms):
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


WitWorld = export_rule(ServiceWatch)
