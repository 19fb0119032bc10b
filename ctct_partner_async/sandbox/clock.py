"""Epoch seconds to and from the ISO-8601 text the API speaks; every input comes from the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

SECONDS_PER_DAY = 86_400


def iso_utc(epoch: float) -> str:
    """``2020-02-06T22:09:15.000Z`` for an epoch time."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> float:
    """Epoch seconds for an ISO-8601 date-time; a naive one is taken as UTC. ``ValueError`` if not one."""
    if "T" not in text and "t" not in text:
        raise ValueError(f"not an ISO-8601 date-time: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def utc_day(epoch: float) -> int:
    """The UTC day number (days since the epoch): the daily quota's period."""
    return int(epoch // SECONDS_PER_DAY)


def day_of_month(epoch: float) -> int:
    """The UTC day of the month, 1..31."""
    return datetime.fromtimestamp(epoch, UTC).day
