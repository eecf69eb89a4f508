"""{{name}}: a wasmon rule in Python.

On every `interval` of {{name}}.toml the host calls `evaluate(input)` with the
latest value of each series the manifest's `select` lists (`input.samples`),
the services known from heartbeats (`input.services`) and recent events
(`input.events`). The rule returns one alert per checked condition with a
severity: `ok`, `warning` or `critical`. The host owns the alert's life:
pending, then firing once the condition held for the manifest's `for`, then
resolved when it is `ok` again (or no longer returned).

This one compares `[config] metric` with `warn` and `critical` thresholds
(`direction = "above"` or `"below"`), one alert per series.
"""

from wasmon_sdk import PluginError, alert, config, export_rule, labels_of

DIRECTIONS = ("above", "below")


class Rule:
    def __init__(self):
        cfg = config()
        self.metric = cfg.get("metric")
        if not self.metric:
            raise PluginError("[config] metric is missing: name the series to check "
                              "(and list it in the manifest's `select`)")
        self.direction = cfg.get("direction", "above")
        if self.direction not in DIRECTIONS:
            raise PluginError(f"[config] direction must be one of {DIRECTIONS}, not {self.direction!r}")
        self.warn = _number(cfg, "warn")
        self.critical = _number(cfg, "critical")
        if self.warn is None and self.critical is None:
            raise PluginError("[config] needs `warn`, `critical` or both")
        self.alert_name = cfg.get("alert", "{{name}}")

    def breaches(self, value, threshold):
        if threshold is None:
            return False
        return value > threshold if self.direction == "above" else value < threshold

    def evaluate(self, input):
        alerts = []
        for s in input.samples:
            if s.name != self.metric:
                continue
            if self.breaches(s.value, self.critical):
                severity, limit = "critical", self.critical
            elif self.breaches(s.value, self.warn):
                severity, limit = "warning", self.warn
            else:
                severity, limit = "ok", None
            labels = labels_of(s)
            summary = f"{self.metric} is {s.value:g}"
            if severity != "ok":
                summary += f", {self.direction} the {severity} threshold {limit:g}"
            where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
            if where:
                summary += f" on {where}"
            alerts.append(alert(self.alert_name, severity, summary, labels, s.value))
        return alerts


def _number(cfg, key):
    value = cfg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PluginError(f"[config] {key} must be a number, not {value!r}")
    return float(value)


# componentize-py exports the class named WitWorld.
WitWorld = export_rule(Rule)
