"""The logic of the service_watch rule (pure Python, no wasmon imports):
durations, glob patterns, and thresholds with hysteresis."""

import fnmatch
import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
SEVERITIES = ("ok", "warning", "critical")


class ConfigError(ValueError):
    """A `[config]` value is wrong; the message names the key."""


def duration_seconds(text, key):
    """`"90s"`, `"5m"`, `"1h30m"`, `"500ms"` or a number of seconds -> seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(text).strip())
    if not parts or "".join(n + u for n, u in parts) != str(text).strip().replace(" ", ""):
        raise ConfigError(f"[config] {key} = {text!r} is not a duration (e.g. \"90s\", \"5m\", \"1h30m\")")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def matches(patterns, name):
    """Whether `name` matches one of the `*` globs in `patterns`."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class Check:
    """One `[[config.checks]]` entry: `metric` against `warn`/`critical`
    (`direction` above or below), raised only after `raise_after`
    evaluations in a row beyond a threshold, and lowered only once the value
    is back past `clear` (a dead band that stops an alert flapping around its
    threshold)."""

    def __init__(self, raw, index):
        where = f"[[config.checks]] #{index + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a table")
        self.metric = raw.get("metric")
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigError(f"{where}: `metric` is missing")
        self.name = raw.get("name", self.metric + "_threshold")
        self.direction = raw.get("direction", "above")
        if self.direction not in ("above", "below"):
            raise ConfigError(f"{where} ({self.name}): direction must be \"above\" or \"below\"")
        self.warn = _number(raw, "warn", where)
        self.critical = _number(raw, "critical", where)
        if self.warn is None and self.critical is None:
            raise ConfigError(f"{where} ({self.name}): set `warn`, `critical` or both")
        first = self.warn if self.warn is not None else self.critical
        self.clear = _number(raw, "clear", where)
        if self.clear is None:
            self.clear = first
        if self.clear > first if self.direction == "above" else self.clear < first:
            raise ConfigError(f"{where} ({self.name}): clear = {self.clear:g} must be on the ok side "
                              f"of {first:g}")
        self.raise_after = raw.get("raise_after", 1)
        if isinstance(self.raise_after, bool) or not isinstance(self.raise_after, int) or self.raise_after < 1:
            raise ConfigError(f"{where} ({self.name}): raise_after must be an integer >= 1")

    def _beyond(self, value, threshold):
        """Whether `value` is past `threshold` in the bad direction (inclusive)."""
        if threshold is None:
            return False
        return value >= threshold if self.direction == "above" else value <= threshold

    def target(self, value):
        """The severity the value alone calls for."""
        if self._beyond(value, self.critical):
            return "critical"
        if self._beyond(value, self.warn):
            return "warning"
        return "ok"

    def step(self, value, memory):
        """The severity to report for `value`, given and updating `memory`
        (`{"level": ..., "streak": n}`, kept in the plugin's state between
        evaluations, so it survives hot reloads)."""
        level = memory.get("level", "ok")
        wanted = self.target(value)
        if wanted == "ok" and level != "ok" and self._beyond(value, self.clear):
            # In the dead band between `clear` and the threshold: not ok yet.
            wanted = "warning" if self.warn is not None else level
        if SEVERITIES.index(wanted) > SEVERITIES.index(level):
            # Going up only after `raise_after` evaluations in a row.
            memory["streak"] = memory.get("streak", 0) + 1
            if memory["streak"] >= self.raise_after:
                memory.update(level=wanted, streak=0)
        else:
            memory.update(level=wanted, streak=0)
        return memory["level"] if "level" in memory else "ok"

    def threshold(self, severity):
        return {"critical": self.critical, "warning": self.warn}.get(severity, self.clear)


def _number(raw, key, where):
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {key} must be a number, not {value!r}")
    return float(value)
