"""wasmon SDK for Python plugins (built with componentize-py 0.25.1 against
`wasmon:plugin@0.2.0`).

```python
from wasmon_sdk import config, export_collector, log, sample

class Uptime:
    def __init__(self):            # runs in the world's init
        self.site = config().get("site", "local")

    def collect(self):
        return [sample("demo_up", 1, {"site": self.site}, help="1 while the demo runs")]

WitWorld = export_collector(Uptime)   # componentize-py exports this class
```

Modules: `http`, `redis`, `sql`, `storage`, `rabbitmq` (capabilities the
manifest grants), `testing` (stand-ins for native unit tests). The generated
`wit_world` bindings are imported lazily, so this package imports anywhere.
"""

from . import http, rabbitmq, redis, sql, storage
from .errors import CapabilityError, Permanent, PluginError, Retryable
from .exports import export_collector, export_rule, export_sink
from .host import config, log, now_ms, plugin_name, state
from .values import alert, check_metric_name, labels_of, message_json, message_text, sample, severity_name

__version__ = "0.2.0"
WIT_VERSION = "0.2.0"

__all__ = [
    "CapabilityError",
    "Permanent",
    "PluginError",
    "Retryable",
    "alert",
    "check_metric_name",
    "config",
    "export_collector",
    "export_rule",
    "export_sink",
    "http",
    "labels_of",
    "log",
    "message_json",
    "message_text",
    "now_ms",
    "plugin_name",
    "rabbitmq",
    "redis",
    "sample",
    "severity_name",
    "sql",
    "state",
    "storage",
]
