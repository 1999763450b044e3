"""UTC calendar periods as pure arithmetic on a timestamp.

A quota's state is keyed by the id of the period it counts (`2026-09`, `2026-W37`,
`2026-09-14`, `total`), so a new period starts from nothing without a job that resets
counters. The functions take epoch seconds and use nothing but integer calendar arithmetic, so
a store that keeps its state elsewhere (a Lua script reading Redis `TIME`) computes the same ids.
Weeks are ISO weeks: they start on Monday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ..config.schema import Period

__all__ = ["period_bounds", "period_end"]


def period_bounds(period: Period, now: float) -> tuple[str, float | None]:
    """The id of the period `now` falls in, and when it ends (None for `total`, which never does)."""
    if period == "total":
        return "total", None
    moment = datetime.fromtimestamp(now, UTC)
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    if period == "day":
        return day.strftime("%Y-%m-%d"), (day + timedelta(days=1)).timestamp()
    if period == "week":
        start = day - timedelta(days=day.weekday())
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", (start + timedelta(days=7)).timestamp()
    first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    following = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    return first.strftime("%Y-%m"), following.timestamp()


def period_end(period: Period, ident: str) -> str | None:
    """When the period named `ident` ends, as ISO 8601 UTC; a calendar fact, no clock needed."""
    if period == "total":
        return None
    if period == "day":
        start = datetime.strptime(ident, "%Y-%m-%d").replace(tzinfo=UTC)
        end = start + timedelta(days=1)
    elif period == "week":
        start = datetime.strptime(ident + "-1", "%G-W%V-%u").replace(tzinfo=UTC)
        end = start + timedelta(days=7)
    else:
        start = datetime.strptime(ident, "%Y-%m").replace(tzinfo=UTC)
        end = datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)
    return end.strftime("%Y-%m-%dT%H:%M:%SZ")
