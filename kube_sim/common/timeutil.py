"""Go-style durations and Kubernetes timestamps."""

from __future__ import annotations

import re
from datetime import datetime, timezone

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ('24h0m0s', '15m', '1.5h', '0')."""
    value = text.strip()
    if value in ("0", "+0", "-0"):
        return 0.0
    sign = 1.0
    if value[:1] in "+-":
        sign = -1.0 if value[0] == "-" else 1.0
        value = value[1:]
    pos = 0
    total = 0.0
    while pos < len(value):
        match = _PART.match(value, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not value:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's Duration.String() for whole seconds: 24h0m0s, 15m0s, 40s."""
    whole = round(seconds)
    if whole == 0:
        return "0s"
    sign = "-" if whole < 0 else ""
    whole = abs(whole)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def now() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime | None = None) -> str:
    """metav1.Time: '2006-01-02T15:04:05Z'."""
    return (moment or now()).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(moment: datetime | None = None) -> str:
    """metav1.MicroTime: '2006-01-02T15:04:05.000000Z'."""
    return (moment or now()).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (with or without fraction, Z or offset)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
