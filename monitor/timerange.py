"""Pure: the time range a monitor view covers (all history, the last 15 min / 1 h / 24 h, or custom).

A range is chosen as a ``RangeSpec`` (what the user picked, kept in the URL) and resolved against
the clock into a ``TimeRange`` (absolute UTC bounds) each time a view is drawn, so "last 15 min"
slides with time. Custom bounds are typed as 'YYYY-MM-DD HH:MM' in UTC. No Dash, no Kafka.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ALL = "all"
CUSTOM = "custom"
RELATIVE_MINUTES: dict[str, int] = {"15m": 15, "1h": 60, "24h": 24 * 60}
RANGE_LABELS: dict[str, str] = {
    ALL: "All history",
    "15m": "Last 15 min",
    "1h": "Last 1 h",
    "24h": "Last 24 h",
    CUSTOM: "Custom (UTC)",
}
"""Range choice -> label, in the order the selector shows them."""
DEFAULT_RANGE = ALL
INPUT_FORMAT = "%Y-%m-%d %H:%M"
"""How custom bounds are typed and shown (UTC)."""


class InvalidRangeError(ValueError):
    """A custom range that cannot be read or is empty; the message says what to type."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """[start, end) in UTC; None on either side means unbounded."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, ts: datetime) -> bool:
        """True when ``ts`` falls in [start, end)."""
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)

    @property
    def is_all(self) -> bool:
        return self.start is None and self.end is None


EVERYTHING = TimeRange()


def parse_bound(text: str | None, name: str) -> datetime | None:
    """A typed bound ('2026-11-28 09:00', or ISO 8601 with a 'T') as UTC; None when blank.

    A bound without an offset is read as UTC. Raises InvalidRangeError with the expected format.
    """
    if text is None or not str(text).strip():
        return None
    value = str(text).strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRangeError(
            f"{name}: {value[:40]!r} is not a time; type YYYY-MM-DD HH:MM (UTC)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_bound(ts: datetime | None) -> str:
    """A bound as typed in the inputs ('' for None)."""
    return "" if ts is None else ts.astimezone(UTC).strftime(INPUT_FORMAT)


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """What the user chose: a choice of ``RANGE_LABELS`` and, for ``custom``, the typed bounds."""

    choice: str = DEFAULT_RANGE
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def build(
        cls, choice: str | None, start_text: str | None = None, end_text: str | None = None
    ) -> RangeSpec:
        """Check a choice and, for ``custom``, parse its bounds; raises InvalidRangeError."""
        choice = choice or DEFAULT_RANGE
        if choice not in RANGE_LABELS:
            raise InvalidRangeError(
                f"unknown time range {choice[:40]!r}; expected one of {list(RANGE_LABELS)}"
            )
        if choice != CUSTOM:
            return cls(choice)
        start, end = parse_bound(start_text, "start"), parse_bound(end_text, "end")
        if start is None and end is None:
            raise InvalidRangeError("custom range: type a start or an end (YYYY-MM-DD HH:MM, UTC)")
        if start is not None and end is not None and end <= start:
            raise InvalidRangeError("custom range: the end must be after the start")
        return cls(CUSTOM, start, end)

    def resolve(self, now: datetime) -> TimeRange:
        """Absolute bounds at ``now``: 'last 15 min' is [now - 15 min, open end)."""
        if self.choice == CUSTOM:
            return TimeRange(self.start, self.end)
        minutes = RELATIVE_MINUTES.get(self.choice)
        if minutes is None:
            return EVERYTHING
        return TimeRange(now.astimezone(UTC) - timedelta(minutes=minutes), None)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready form (kept in a ``dcc.Store``)."""
        return {"range": self.choice, "from": format_bound(self.start), "to": format_bound(self.end)}

    @classmethod
    def from_data(cls, data: Any) -> RangeSpec:
        """Back from ``to_data``; anything unreadable is the default range."""
        if not isinstance(data, dict):
            return cls()
        try:
            return cls.build(data.get("range"), data.get("from"), data.get("to"))
        except InvalidRangeError:
            return cls()

    def describe(self) -> str:
        """'Last 15 min', or '2026-11-28 09:00 to 2026-11-28 10:00 UTC' for a custom range."""
        if self.choice != CUSTOM:
            return RANGE_LABELS[self.choice]
        start = format_bound(self.start) or "the beginning"
        end = format_bound(self.end) or "now"
        return f"{start} to {end} UTC"


def floor_range(rng: TimeRange) -> str:
    """The bounds to the minute, as text: equal for two resolutions of a sliding range in one minute."""
    return "/".join("" if ts is None else ts.strftime("%Y%m%d%H%M") for ts in (rng.start, rng.end))
