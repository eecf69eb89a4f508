"""Building the WIT values plugins return (samples, alerts) and reading the
ones they receive (labels, severities)."""

import json
import math
import re

from . import _wit
from .errors import PluginError

# The host's basic naming rules, checked here too so a unit test catches a bad
# name before the host drops the sample (the host checks more: units, words).
_METRIC_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_CAMEL = re.compile(r"[a-z][A-Z]")
RESERVED_PREFIXES = ("wasmon_", "monitoring_")


def check_metric_name(name, counter=False):
    """Raises `ValueError` naming the rule `name` breaks (see the host's
    metric naming rules in docs/plugins.md)."""
    if not isinstance(name, str) or not _METRIC_NAME.match(name):
        raise ValueError(f"metric name {name!r} is not valid: use [a-zA-Z_][a-zA-Z0-9_]*, "
                         "e.g. queue_depth or http_requests")
    if _CAMEL.search(name):
        raise ValueError(f"metric name {name!r} is camelCase: use snake_case")
    if name.lower().startswith(RESERVED_PREFIXES):
        raise ValueError(f"metric name {name!r}: the prefixes {', '.join(RESERVED_PREFIXES)} "
                         "are the host's own")
    if not counter and name.endswith("_total"):
        raise ValueError(f"metric name {name!r}: only counters end in _total "
                         "(pass counter=True, or drop the suffix)")

SEVERITIES = ("ok", "warning", "critical")


def _labels(labels):
    """WIT labels from a dict (`{"site": "eu"}`), a list of `(name, value)`
    pairs, or a list of WIT `Label`s (passed through)."""
    T = _wit.types()
    if not labels:
        return []
    if isinstance(labels, dict):
        items = labels.items()
    else:
        items = [(getattr(x, "name", None), getattr(x, "value", None)) if not isinstance(x, tuple) else x
                 for x in labels]
    out = []
    for name, value in items:
        name = str(name)
        if not _LABEL_NAME.match(name):
            raise ValueError(f"label name {name!r} is not valid: use [a-zA-Z_][a-zA-Z0-9_]*")
        out.append(T.Label(name=name, value=str(value)))
    return out


def labels_of(value):
    """A `dict` of the labels of a sample, alert, event (`attributes`) or
    message (`headers`), or of a list of WIT `Label`s."""
    if isinstance(value, list):
        items = value
    else:
        items = getattr(value, "labels", None)
        if items is None:
            items = getattr(value, "attributes", None)
        if items is None:
            items = getattr(value, "headers", None) or []
    return {label.name: label.value for label in items}


def sample(name, value, labels=None, *, counter=False, help=None, timestamp_ms=None):
    """A sample: a gauge by default, a counter with `counter=True` (the host
    exports counters with a `_total` suffix). `labels` is a dict; `help` is
    shown as `# HELP` in `/metrics`; `timestamp_ms` defaults to "now"."""
    check_metric_name(name, counter)
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    value = float(value)
    if counter and not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"counter {name!r} = {value}: a counter is a finite number >= 0")
    T = _wit.types()
    return T.Sample(
        name=name,
        kind=T.MetricKind.COUNTER if counter else T.MetricKind.GAUGE,
        labels=_labels(labels),
        value=value,
        help=help,
        timestamp_ms=None if timestamp_ms is None else int(timestamp_ms),
    )


def severity(value):
    """A WIT `Severity` from `"ok"`, `"warning"`, `"critical"` (or a `Severity`)."""
    T = _wit.types()
    if isinstance(value, T.Severity):
        return value
    text = str(value).lower()
    if text not in SEVERITIES:
        raise ValueError(f"severity {value!r} is not one of {', '.join(SEVERITIES)}")
    return T.Severity[text.upper()]


def severity_name(value):
    """`"ok"`, `"warning"` or `"critical"` from a WIT `Severity`."""
    return value.name.lower()


def message_text(message):
    """A message's body as text (UTF-8, undecodable bytes replaced)."""
    return bytes(message.body).decode("utf-8", "replace")


def message_json(message):
    """A message's body parsed as JSON; a `PluginError` naming the source when it is not."""
    try:
        return json.loads(bytes(message.body))
    except ValueError as e:
        raise PluginError(f"message from {message.source} is not JSON: {e}") from None


def alert(name, severity_, summary, labels=None, value=None):
    """One checked condition for a rule to return: `severity_` is `"ok"`,
    `"warning"` or `"critical"`. Return it on every evaluation while checked;
    `ok` (or no longer returning it) resolves it."""
    T = _wit.types()
    return T.Alert(
        name=str(name),
        labels=_labels(labels),
        severity=severity(severity_),
        summary=str(summary),
        value=None if value is None else float(value),
    )
