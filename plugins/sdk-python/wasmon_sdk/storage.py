"""Read-only S3-compatible object storage through the host (the manifest's
`[capabilities.storage]`; the host signs requests, the plugin never sees the
keys). Failures raise `CapabilityError("storage", kind, detail)`: `not-granted`,
`connection`, `auth`, `not-found`, `server`, `too-large`.
"""

from . import _wit
from .errors import from_wit


def _call(what, fn, *args):
    try:
        return fn(*args)
    except _wit.err_class() as e:
        error = from_wit("storage", e.value)
        error.args = (f"{what}: {error}",)
        raise error from None


def health():
    """Round trip of a signed ListBuckets, in microseconds."""
    return _call("health", _wit.imports("storage").health)


def buckets():
    """The buckets (WIT `Bucket`: `name`, `created_ms`)."""
    return list(_call("buckets", _wit.imports("storage").buckets))


def bucket_stats(bucket, prefix=None):
    """Objects and bytes in `bucket` (under `prefix`): WIT `BucketUsage`
    (`objects`, `bytes`, `truncated`)."""
    return _call(f"bucket_stats({bucket!r})", _wit.imports("storage").bucket_stats, bucket, prefix)


def head(bucket, key):
    """One object's metadata: WIT `ObjectInfo` (`size`, `etag`, `last_modified_ms`, `content_type`)."""
    return _call(f"head({bucket!r}, {key!r})", _wit.imports("storage").head, bucket, key)
