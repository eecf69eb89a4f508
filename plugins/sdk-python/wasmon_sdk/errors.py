"""The exceptions a plugin raises, and how the SDK turns them into WIT errors."""


class PluginError(Exception):
    """An expected failure: the export returns `err(error{message})` with this
    message (no traceback). Raise it for "the upstream is down", "bad config"...

    In a sink's `deliver`, a `PluginError` is retryable: raise `Permanent` to
    drop the batch instead.
    """


class Retryable(PluginError):
    """Sinks: the batch could not be delivered now; the host retries it later
    (with backoff and jitter)."""


class Permanent(PluginError):
    """Sinks: the batch can never be delivered; the host dead-letters it and
    moves on."""


class CapabilityError(PluginError):
    """A host capability (`http`, `redis`, `sql`, `storage`, `rabbitmq`, `state`)
    answered with an error.

    `capability` names it, `kind` is the WIT case in kebab-case (`not-granted`,
    `timeout`, `transport`, `too-large`, ...) and `detail` the host's text (or
    the cap, for `too-large`, as a string; the raw value is in `value`).
    """

    def __init__(self, capability, kind, detail="", value=None):
        self.capability = capability
        self.kind = kind
        self.detail = detail
        self.value = value
        text = f"{capability}: {kind}"
        if detail:
            text += f": {detail}"
        super().__init__(text)

    @property
    def retryable(self):
        """Whether waiting may help: connection trouble and timeouts, not a
        denied or invalid request."""
        return self.kind in ("timeout", "transport", "connection", "too-large")


def _kebab(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("-")
        out.append(ch.lower())
    return "".join(out)


def from_wit(capability, error):
    """A `CapabilityError` from a generated WIT variant value such as
    `HttpError_NotGranted("...")` or `HttpError_Timeout()`."""
    cls = type(error).__name__
    case = cls.split("_", 1)[1] if "_" in cls else cls
    value = getattr(error, "value", None)
    if hasattr(error, "message") and value is None:  # types.Error
        value = error.message
        case = "error"
    detail = "" if value is None else str(value)
    if case == "TooLarge" and value is not None:
        detail = f"over the cap of {value} bytes"
    elif case == "TooManyRows" and value is not None:
        detail = f"more than the cap of {value} rows"
    return CapabilityError(capability, _kebab(case), detail, value)
