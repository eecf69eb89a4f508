"""What every plugin has without a grant: logging, its config, its name and a
small key-value state that survives hot reloads and restarts."""

import json
import time

from . import _wit
from .errors import CapabilityError, PluginError


class _Log:
    """`log.info("...")`: a line in the host's log, tagged with the plugin's
    name (rate-limited by the manifest's `log_lines_per_second`)."""

    def _write(self, level, message):
        host = _wit.host()
        host.log(getattr(host.Level, level), str(message))

    def trace(self, message):
        self._write("TRACE", message)

    def debug(self, message):
        self._write("DEBUG", message)

    def info(self, message):
        self._write("INFO", message)

    def warn(self, message):
        self._write("WARN", message)

    warning = warn

    def error(self, message):
        self._write("ERROR", message)


log = _Log()


def config():
    """The manifest's `[config]` table as a `dict` (empty when there is none)."""
    text = _wit.host().config_json()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise PluginError(f"the host sent [config] that is not JSON: {e}") from None
    return value if isinstance(value, dict) else {}


def plugin_name():
    """The plugin's name: its file stem in the plugin directory."""
    return _wit.host().plugin_name()


def now_ms():
    """Unix time in milliseconds (the host's wall clock)."""
    return int(time.time() * 1000)


class _State:
    """The plugin's key-value state (`state.get/set/get_json/...`), bounded by
    the manifest's `state_quota`. Values are bytes; `str` is stored as UTF-8."""

    def get(self, key, default=None):
        """The raw bytes under `key`, or `default`."""
        value = _wit.host().state_get(key)
        return default if value is None else bytes(value)

    def get_str(self, key, default=None):
        """The value as text (UTF-8), or `default`."""
        value = self.get(key)
        return default if value is None else value.decode("utf-8", "replace")

    def get_json(self, key, default=None):
        """The value parsed as JSON, or `default` when absent or not JSON."""
        value = self.get(key)
        if value is None:
            return default
        try:
            return json.loads(value)
        except ValueError:
            return default

    def set(self, key, value):
        """Stores bytes (or a `str`, as UTF-8). Raises `CapabilityError`
        (capability `state`) when over the quota."""
        if isinstance(value, str):
            value = value.encode("utf-8")
        try:
            _wit.host().state_set(key, bytes(value))
        except _wit.err_class() as e:
            message = getattr(e.value, "message", str(e.value))
            raise CapabilityError("state", "quota", f"{key!r}: {message}", message) from None

    def set_json(self, key, value):
        """Stores `value` as JSON."""
        self.set(key, json.dumps(value, separators=(",", ":")))

    def delete(self, key):
        """Removes `key` (a missing key is fine)."""
        _wit.host().state_delete(key)

    def keys(self):
        """Every key."""
        return list(_wit.host().state_keys())


state = _State()
