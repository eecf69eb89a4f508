"""Named SQL queries through the host (PostgreSQL, read-only transactions):

```toml
[capabilities.sql]
url_env = "APP_DB_URL"
[capabilities.sql.queries]
active_jobs = "SELECT state, count(*) FROM jobs WHERE queue = $1 GROUP BY state"
```

`query("active_jobs", "default")` binds `$1`... from Python values (`None`,
`bool`, `int`, `float`, `str`, `bytes`, `datetime`) and returns `Rows`:
`columns`, `rows` (tuples of Python values; timestamps as UTC `datetime`)
and `dicts()`. Failures raise `CapabilityError("sql", kind, detail)`:
`not-granted`, `connection`, `query`, `too-many-rows`, `timeout`.
"""

import datetime as _dt

from . import _wit
from .errors import from_wit

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class Rows:
    """A query's answer: `columns` (names) and `rows` (tuples, column order)."""

    def __init__(self, columns, rows):
        self.columns = columns
        self.rows = rows

    def dicts(self):
        """Each row as a `dict` keyed by column name."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return f"<Rows {self.columns} x {len(self.rows)}>"


def to_value(value):
    """A WIT `sql.Value` from a Python value."""
    sql = _wit.imports("sql")
    if value is None:
        return sql.Value_Null()
    if isinstance(value, bool):
        return sql.Value_Boolean(value)
    if isinstance(value, int):
        return sql.Value_Int(value)
    if isinstance(value, float):
        return sql.Value_Float(value)
    if isinstance(value, str):
        return sql.Value_Text(value)
    if isinstance(value, (bytes, bytearray)):
        return sql.Value_Bytes(bytes(value))
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return sql.Value_Timestamp((value - _EPOCH) // _dt.timedelta(microseconds=1))
    raise TypeError(f"cannot send a {type(value).__name__} as an SQL parameter "
                    "(use None, bool, int, float, str, bytes or datetime)")


def from_value(value):
    """A Python value from a WIT `sql.Value`."""
    kind = type(value).__name__.split("_", 1)[-1]
    if kind == "Null":
        return None
    if kind == "Timestamp":
        return _EPOCH + _dt.timedelta(microseconds=value.value)
    return value.value


def query(name, *params):
    """Runs the manifest's query `name` with `params` bound to `$1`, `$2`, ..."""
    sql = _wit.imports("sql")
    try:
        answer = sql.query(name, [to_value(p) for p in params])
    except _wit.err_class() as e:
        error = from_wit("sql", e.value)
        error.args = (f"query {name!r}: {error}",)
        raise error from None
    return Rows(list(answer.columns), [tuple(from_value(v) for v in row) for row in answer.rows])
