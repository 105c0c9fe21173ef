"""Templates and the headers every page carries. Jinja2 escapes every value it fills in, so a
job's name or command shows as text, never as markup."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from clusterctl.parsing import format_duration
from clusterctl.serving.pricing import money_text

NONE = "\N{EN DASH}"
"""What a page shows for a figure not known."""

HEADERS = {
    # Scripts, styles and live updates from the controller only; no framing by other sites.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _percent(v: float | None) -> str:
    return NONE if v is None else f"{v:.0%}"


def _ago(at: datetime | None) -> str:
    """A run time or a wait: how long since ``at``."""
    if at is None:
        return NONE
    return format_duration(max(0.0, (datetime.now(timezone.utc) - at).total_seconds()))


def _when(at: datetime | None) -> str:
    return NONE if at is None else f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


def _gib(n: int | None) -> str:
    return NONE if n is None else f"{n / 2**30:.1f} GiB"


def _money(v: float | None, currency: str) -> str:
    return NONE if v is None else money_text(v, currency)


env = Environment(loader=PackageLoader("clusterctl.api.web"), autoescape=select_autoescape(),
                  trim_blocks=True, lstrip_blocks=True)
env.filters.update(percent=_percent, ago=_ago, when=_when, gib=_gib, money=_money,
                   duration=lambda s: NONE if s is None else format_duration(s))


def fragment(template: str, **context: Any) -> str:
    return env.get_template(template).render(**context)


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page, or a section a page loads into itself, with the headers every page carries."""
    return HTMLResponse(fragment(template, **context), status_code=status, headers=HEADERS)
