"""What a service's requests cost on owned GPUs, next to what an API provider would charge:
pure arithmetic over the cost of its replicas' GPU time (the cost model's, as for any job) and
what its endpoint counted. The replicas' time with no request coming or in flight is waste,
priced at the same rate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RequestCost:
    cost_per_1k_requests: float | None
    cost_per_1m_tokens: float | None
    api_equivalent: float | None
    """What the same requests would have cost at ``--price-per-1k``."""
    saving: float | None
    """``api_equivalent`` less what they cost here (negative: the provider was cheaper)."""
    idle_share: float | None
    """The share of ready replica time with no request coming or in flight."""
    waste_cost: float


def money_text(value: float, currency: str) -> str:
    """An amount as ``serve show`` and the dashboard write it: cents, or four decimals below
    one (a request's share is often a fraction of a cent)."""
    return f"{value:,.2f} {currency}" if abs(value) >= 1 else f"{value:.4f} {currency}"


def request_cost(cost: float, requests: int, tokens: int, price_per_1k: float | None,
                 replica_s: float, idle_replica_s: float) -> RequestCost:
    """``cost`` is what the replicas' GPU time cost (capacity and energy), in money, not
    rounded: the figures per request are to four decimals (a thousand requests of a small
    model cost a fraction of a cent)."""
    idle = idle_replica_s / replica_s if replica_s > 0 else None
    api = round(price_per_1k * requests / 1000, 4) if price_per_1k is not None else None
    return RequestCost(
        cost_per_1k_requests=round(cost / requests * 1000, 4) if requests else None,
        cost_per_1m_tokens=round(cost / tokens * 1_000_000, 4) if tokens else None,
        api_equivalent=api,
        saving=round(api - cost, 4) if api is not None else None,
        idle_share=round(idle, 4) if idle is not None else None,
        waste_cost=round(cost * idle, 4) if idle is not None else 0.0)
