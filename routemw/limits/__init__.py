"""Rate limits, quotas and budgets: the store they are counted in, admission, and settlement.

`store` holds the async `LimitStore` protocol and its in-memory implementation; `periods` the
UTC calendar arithmetic; `estimate` what a request may use before it is sent; `admission` the
`Limits` of one gateway, the `LimitMiddleware` and the `RouteGate` the fallback loop consults;
`headers` OpenAI's `x-ratelimit-*` headers.
"""

from .admission import Lease, LimitMiddleware, Limits, RouteGate
from .estimate import Estimate, estimate
from .store import Admission, Claim, LimitStore, MemoryLimitStore, Quota, Rate, Settlement, Slots, Standing

__all__ = [
    "Admission",
    "Claim",
    "Estimate",
    "Lease",
    "LimitMiddleware",
    "LimitStore",
    "Limits",
    "MemoryLimitStore",
    "Quota",
    "Rate",
    "RouteGate",
    "Settlement",
    "Slots",
    "Standing",
    "estimate",
]
