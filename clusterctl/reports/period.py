"""The period a report covers, from ``--since`` or ``--from``/``--to`` (the API's query takes the
same words), bounded so that one request cannot take the controller down."""

from __future__ import annotations

from datetime import datetime, timedelta

from clusterctl.parsing import BadInput, parse_duration, parse_instant

MAX_PERIOD_DAYS = 400
"""The longest period a report covers unless the controller's settings allow more: a report's
work and answer grow with its period, and one request must not take the controller down."""


def parse_report_period(since: str | None, from_: str | None, to: str | None,
                        now: datetime, max_days: int = MAX_PERIOD_DAYS
                        ) -> tuple[datetime, datetime]:
    """A report's period: ``--since 30d`` back from now (the default), or ``--from``/``--to``
    dates (UTC midnight when no time is given); ``--to`` defaults to now. At most
    ``max_days`` long."""
    if since is not None and from_ is not None:
        raise BadInput("--since", "give either --since or --from, not both")
    end = parse_instant(to, "--to") if to else now
    if from_ is not None:
        start = parse_instant(from_, "--from")
    else:
        start = end - timedelta(seconds=parse_duration(since or "30d", "--since"))
    if start >= end:
        raise BadInput("--from", f"{start.date().isoformat()} is not before the end of the "
                       f"period ({end.date().isoformat()})")
    if end - start > timedelta(days=max_days):
        raise BadInput("--from" if from_ is not None else "--since",
                       f"the period is {(end - start).days} days; at most {max_days} days "
                       "(max_report_days in the controller's settings)")
    return start, end
