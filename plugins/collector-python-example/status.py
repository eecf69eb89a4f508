"""Parsers for web servers' status pages (pure Python, no wasmon imports):

- nginx `stub_status` (ngx_http_stub_status_module):

      Active connections: 291
      server accepts handled requests
       16630948 16630948 31070465
      Reading: 6 Writing: 179 Waiting: 106

- Apache `mod_status` machine-readable page (`/server-status?auto`):
  `Key: value` lines (`Total Accesses: 131`, `BusyWorkers: 1`,
  `Scoreboard: _W___...`).
"""

import re

FORMATS = ("auto", "nginx", "apache")

# Apache scoreboard characters -> worker state label.
SCOREBOARD = {
    "_": "waiting", "S": "starting", "R": "reading", "W": "sending", "K": "keepalive",
    "D": "dns", "C": "closing", "L": "logging", "G": "graceful", "I": "idle_cleanup", ".": "open",
}


class ParseError(ValueError):
    """The page is not in the expected format; the message says why."""


def detect(text):
    """`"nginx"` or `"apache"` from the page's content."""
    head = text.lstrip()
    if head.startswith("Active connections:"):
        return "nginx"
    if re.search(r"^(Total Accesses|ServerVersion|Scoreboard|BusyWorkers):", text, re.M):
        return "apache"
    if head[:200].lower().startswith(("<!doctype", "<html")):
        raise ParseError("got an HTML page: for Apache use the machine-readable page "
                         "(/server-status?auto); for nginx, the stub_status location")
    raise ParseError(f"neither nginx stub_status nor Apache server-status?auto; it starts: {_first_line(text)!r}")


def _first_line(text):
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


def parse_nginx(text):
    """The stub_status counters as a dict: `active`, `accepted`, `handled`,
    `requests`, `reading`, `writing`, `waiting`."""
    m = re.search(
        r"Active connections:\s*(\d+)\s+server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)\s+"
        r"Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)",
        text,
    )
    if not m:
        raise ParseError(f"not an nginx stub_status page; it starts: {_first_line(text)!r}")
    keys = ("active", "accepted", "handled", "requests", "reading", "writing", "waiting")
    return {k: int(v) for k, v in zip(keys, m.groups())}


def parse_apache(text):
    """The `Key: value` lines of server-status?auto: numbers as floats (Apache
    writes `.5` for 0.5), `Scoreboard` as a dict of state -> count, other
    text as is."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Scoreboard":
            counts = {state: 0 for state in SCOREBOARD.values()}
            for ch in value:
                state = SCOREBOARD.get(ch)
                if state:
                    counts[state] += 1
            values[key] = counts
            continue
        try:
            values[key] = float(value)
        except ValueError:
            values[key] = value
    if "Total Accesses" not in values and "BusyWorkers" not in values:
        raise ParseError("no `Total Accesses` or `BusyWorkers` line: is this server-status?auto "
                         f"(ExtendedStatus On for the totals)? it starts: {_first_line(text)!r}")
    return values
