"""`export_collector` / `export_rule` / `export_sink`: turn a plain class into
the `WitWorld` class componentize-py exports.

The plugin class is built once, in the world's `init` (so its constructor may
read `config()`, log, and raise to fail the load). Every export is guarded:

- a `PluginError` becomes `err(error{message})` (for sinks: `Permanent` is a
  permanent delivery error, a `CapabilityError` is retryable when waiting can
  help (timeout, transport, connection), and any other is retryable);
- any other exception becomes an error naming its type, message and the
  innermost frame (`KeyError: 'url' at /0/app.py:12 in collect`), and its
  traceback is written to the host's log. Without this, componentize-py traps
  with "Python function threw an unexpected exception" and nothing else.
"""

import os
import re
import traceback

from . import _wit
from .errors import CapabilityError, Permanent, PluginError
from .host import log


def _file(name):
    """A frame's file as the author knows it: componentize-py mounts each
    `-p` directory at `/0/`, `/1/`...; drop that prefix (`/0/app.py` -> `app.py`)."""
    match = re.match(r"^/\d+/(.+)$", name)
    return match.group(1) if match else name


def _own_frames(tb):
    """`tb` without the SDK's own frames at its start (the guards)."""
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return tb


_SDK_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def describe(error):
    """`Type: message at file:line in function`: the innermost frame of the
    plugin's own code (not the SDK's), else the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    own = [f for f in frames if not os.path.abspath(f.filename).startswith(_SDK_DIR)]
    frame = (own or frames)[-1] if frames else None
    where = f" at {_file(frame.filename)}:{frame.lineno} in {frame.name}" if frame else ""
    text = str(error)
    return f"{type(error).__name__}: {text}{where}" if text else f"{type(error).__name__}{where}"


def _report(export, error):
    """Logs the traceback of an unexpected exception; never raises."""
    try:
        lines = traceback.format_exception(type(error), error, _own_frames(error.__traceback__))
        log.error(f"{export} raised an unexpected exception:\n{''.join(lines).rstrip()}")
    except Exception:  # the log itself failed: the error message still says what happened
        pass


def _error(message):
    return _wit.err_class()(_wit.types().Error(message=message))


def _guarded(export, call, *args):
    """Runs `call(*args)` for the export `export` (collector/rule style:
    errors are `types.Error`)."""
    Err = _wit.err_class()
    try:
        return call(*args)
    except Err as e:
        if isinstance(e.value, _wit.types().Error):
            raise
        raise _error(f"{export}: unhandled {type(e.value).__name__}: {e.value}") from None
    except PluginError as e:
        raise _error(str(e) or type(e).__name__) from None
    except Exception as e:
        _report(export, e)
        raise _error(describe(e)) from None


def _guarded_delivery(call, batch):
    """`deliver` guard: errors are `types.DeliveryError`."""
    T = _wit.types()
    Err = _wit.err_class()
    try:
        call(batch)
    except Err as e:
        if isinstance(e.value, (T.DeliveryError_Retryable, T.DeliveryError_Permanent)):
            raise
        message = getattr(e.value, "message", None) or f"unhandled {type(e.value).__name__}: {e.value}"
        raise Err(T.DeliveryError_Retryable(message)) from None
    except Permanent as e:
        raise Err(T.DeliveryError_Permanent(str(e) or "Permanent")) from None
    except CapabilityError as e:
        # Waiting helps a timeout or a refused connection, not a request the
        # manifest does not grant or that is not valid.
        kind = T.DeliveryError_Retryable if e.retryable else T.DeliveryError_Permanent
        raise Err(kind(str(e))) from None
    except PluginError as e:
        raise Err(T.DeliveryError_Retryable(str(e) or type(e).__name__)) from None
    except Exception as e:
        # A bug: retryable, so no event is lost; fix the sink and hot-reload it.
        _report("deliver", e)
        raise Err(T.DeliveryError_Retryable(describe(e))) from None


def _items(export, values, kind):
    """`values` as a list, each checked to be a `types.<kind>` (a wrong type
    would otherwise trap while componentize-py converts it)."""
    expected = getattr(_wit.types(), kind)
    if values is None:
        return []
    if isinstance(values, (str, bytes, dict)):
        raise PluginError(f"{export} returned {type(values).__name__} {values!r:.80}, not a list "
                          f"of {kind} values")
    try:
        out = list(values)
    except TypeError:
        raise PluginError(f"{export} returned {type(values).__name__} {values!r:.80}, not a list "
                          f"of {kind} values") from None
    for i, value in enumerate(out):
        if not isinstance(value, expected):
            helper = "sample(...)" if kind == "Sample" else "alert(...)"
            raise PluginError(f"{export} returned {type(value).__name__} {value!r:.80} at index {i}, "
                              f"not a {kind}; build each with wasmon_sdk.{helper}")
    return out


def _check_class(cls, world, required):
    if not isinstance(cls, type):
        raise TypeError(f"export_{world}() takes the plugin class, not {cls!r}")
    missing = [m for m in required if not callable(getattr(cls, m, None))]
    if missing:
        raise TypeError(f"{cls.__name__} has no {', '.join(missing)}() method: "
                        f"a {world} defines {', '.join(required)}()")


class _Holder:
    """The plugin instance built by `init`."""

    def __init__(self, cls):
        self.cls = cls
        self.plugin = None

    def build(self):
        self.plugin = self.cls()

    def get(self, export):
        if self.plugin is None:
            raise PluginError(f"{export} called before init")
        return self.plugin


def export_collector(cls):
    """`WitWorld = export_collector(MyCollector)`: `MyCollector()` is built
    in `init`; it defines `collect()` returning samples, and optionally
    `on_message(message)` for messages the host consumes for it."""
    _check_class(cls, "collector", ["collect"])
    holder = _Holder(cls)

    class WitWorld(_wit.world().WitWorld):
        def init(self):
            _guarded("init", holder.build)

        def collect(self):
            return _guarded("collect", lambda: _items("collect", holder.get("collect").collect(), "Sample"))

        def on_message(self, message):
            def call():
                handler = getattr(holder.get("on_message"), "on_message", None)
                return _items("on_message", handler(message), "Sample") if handler else []

            return _guarded("on_message", call)

    WitWorld.plugin_class = cls
    return WitWorld


def export_rule(cls):
    """`WitWorld = export_rule(MyRule)`: `MyRule()` is built in `init`; it
    defines `evaluate(input)` returning alerts (`input.now_ms`,
    `input.samples`, `input.services`, `input.events`)."""
    _check_class(cls, "rule", ["evaluate"])
    holder = _Holder(cls)

    class WitWorld(_wit.world().WitWorld):
        def init(self):
            _guarded("init", holder.build)

        def evaluate(self, input):
            return _guarded("evaluate", lambda: _items("evaluate", holder.get("evaluate").evaluate(input), "Alert"))

    WitWorld.plugin_class = cls
    return WitWorld


def export_sink(cls):
    """`WitWorld = export_sink(MySink)`: `MySink()` is built in `init`; it
    defines `deliver(batch)` (a list of events; may be empty when the
    manifest's `tick` is due). Raise `Retryable` to get the batch again
    later, `Permanent` to drop it (dead-lettered)."""
    _check_class(cls, "sink", ["deliver"])
    holder = _Holder(cls)

    class WitWorld(_wit.world().WitWorld):
        def init(self):
            _guarded("init", holder.build)

        def deliver(self, batch):
            def call(events):
                holder.get("deliver").deliver(events)

            _guarded_delivery(call, batch)

    WitWorld.plugin_class = cls
    return WitWorld
