"""Admission: one decision over every scope a request falls under, and its settlement.

`Limits` is built once from the config. For each request `LimitMiddleware` asks the store to
admit its claims on the caller's key (its own `limits`, else the config's defaults) and on the
public model, all in one atomic step, and the request reserves what it can use: one request,
its likely tokens against `tpm`, a concurrency slot, and against quotas and budgets the most it
can use (the input bound plus its output cap, at the priciest candidate's price; see
`estimate`). A refusal answers 402 (a quota or budget: retrying will not help before the period
resets) ahead of 429 (a rate or concurrency limit: retry when `retry-after` says), and no
upstream is called.

The reservation is settled exactly once, when the reply ends:

- a completion: at once, with the usage it reports;
- a stream: when the gateway closes it (the end, an error, or the client leaving), with the
  usage the upstream reported, or, when it reported none (a client that left before the usage
  chunk, a target that does not report usage), with the whole reservation;
- no reply (every target failed, a middleware raised, the call was cancelled): released, so
  only the request itself stays counted against `rpm`.

Route limits (`RouteGate`) sit in the fallback loop beside health: a route whose own `rpm` or
`tpm` would be exceeded is skipped like a cooling one. A request with a single candidate has
nothing to steer to, so its route's claims join the key's and the model's in the one admission.
The route that answered is settled with the request, routes tried and failed are refunded, all
in one store call.

Per request the work is kept small because it is paid on every one: each scope's claims are
worked out once (`_Scope`), only the amounts are filled in per request, and claims a
settlement cannot change (a started request's `rpm`) are not sent to the store again.

With any limit configured, every account's spend is counted (an uncapped `budget` ledger per
UTC month when it has no budget) so `GET /v1/key` can report it; without limits nothing is.

On the memory store each operation completes without suspending, so a cancellation cannot cut
a settlement short; a store that does I/O gets its settlements run in a shielded task.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..accounts import ANONYMOUS, Account
from ..config.schema import GatewayConfig, LimitsConfig, Period
from ..errors import QuotaExceededError, RateLimitError, RouteMWError
from ..pipeline import Call, Handler
from ..prices import Price, PriceTable
from ..providers.base import Target
from ..reply import Completion, Reply
from ..routing import Catalog
from ..usage import Meter
from .estimate import Estimate, estimate
from .headers import duration, ratelimit_headers
from .periods import period_end
from .store import Claim, LimitStore, MemoryLimitStore, Quota, Rate, Settlement, Slots, Standing

__all__ = ["Lease", "LimitMiddleware", "Limits", "RouteGate"]

logger = logging.getLogger("routemw")

_LEASE: Final = "routemw.limits"  # call.state key of the request's lease
_KINDS: Final = {"rpm": "requests", "tpm": "tokens", "concurrency": "concurrency"}
_WHAT: Final = {"rpm": "requests per minute", "tpm": "tokens per minute", "concurrency": "requests in flight"}
_CONCURRENCY_RETRY: Final = 1.0  # a slot frees when some reply ends, which no one can foresee
_SCOPE_CACHE: Final = 100_000  # accounts whose claims are kept worked out


@dataclass(slots=True, eq=False)
class Lease:
    """What one request reserved, so it can be settled exactly once."""

    id: str
    claims: list[Claim]
    periods: Sequence[str | None]  # each claim's period id from the admission (a quota's; else None)
    estimate: Estimate
    routes: dict[str, list[Claim]] = field(default_factory=dict)  # route claims: rates, no periods
    settled: bool = False


UNCAPPED: Final = 2**53 - 1  # micro-USD: a budget that only counts (exact in a double, so in Lua too)


@dataclass(frozen=True, slots=True, eq=False)
class _Scope:
    """One scope's limits as claims, worked out once: the claims whose amount never changes
    (a request, a slot) are made here and shared by every request; the others keep what they
    need to be made quickly with the request's amounts."""

    limits: LimitsConfig
    group: str
    rpm: Rate | None
    tpm: int | None
    slots: Slots | None
    budget: tuple[int, Period] | None  # micro-USD; UNCAPPED when it only tracks spend
    tokens: tuple[int, Period] | None

    @classmethod
    def of(cls, group: str, limits: LimitsConfig, *, spend: bool = False) -> _Scope | None:
        """None when nothing is counted for this scope."""
        budget = (limits.budget.micro_usd, limits.budget.period) if limits.budget is not None else None
        if budget is None and spend:
            budget = (UNCAPPED, "month")
        if not limits and budget is None:
            return None
        return cls(
            limits=limits,
            group=group,
            rpm=Rate(group, "rpm", limits.rpm, 1, refundable=False) if limits.rpm else None,
            tpm=limits.tpm or None,
            slots=Slots(group, limits.concurrency) if limits.concurrency else None,
            budget=budget,
            tokens=(limits.tokens.total, limits.tokens.period) if limits.tokens is not None else None,
        )

    @property
    def capped(self) -> bool:
        """Whether it has a real USD budget (which every route it can reach must have a price for)."""
        return self.budget is not None and self.budget[0] != UNCAPPED

    def claims(self, out: list[Claim], est: Estimate, cost: int) -> None:
        group = self.group
        if self.rpm is not None:
            out.append(self.rpm)
        if self.tpm is not None:
            out.append(Rate(group, "tpm", self.tpm, est.input_likely + est.output))
        if self.slots is not None:
            out.append(self.slots)
        if self.budget is not None:
            out.append(Quota(group, "budget", self.budget[0], cost, self.budget[1]))
        if self.tokens is not None:
            out.append(Quota(group, "tokens", self.tokens[0], est.input_bound + est.output, self.tokens[1]))


def _scopes(kind: str, limits: Mapping[str, LimitsConfig]) -> dict[str, _Scope]:
    scopes = {name: _Scope.of(f"{kind}:{name}", each) for name, each in limits.items()}
    return {name: scope for name, scope in scopes.items() if scope is not None}


def _scope(group: str) -> str:
    """How a refusal names a scope: the caller's own key, never an account name."""
    kind, _, name = group.partition(":")
    if kind == "acct":
        return "your API key"
    if kind == "model":
        return f"model '{name}' (shared by all keys)"
    return f"route {name}"


class Limits:
    """Every limit of one gateway, the store they are counted in, and the prices budgets use."""

    def __init__(
        self,
        *,
        store: LimitStore,
        prices: PriceTable,
        defaults: LimitsConfig | None = None,
        models: Mapping[str, LimitsConfig] | None = None,
        routes: Mapping[str, LimitsConfig] | None = None,
        estimate_output_tokens: int = 1024,
        track_spend: bool = False,
    ) -> None:
        """`track_spend` counts every account's spend (for `GET /v1/key`), not only budgeted ones."""
        self.store = store
        self.prices = prices
        self.defaults = defaults if defaults is not None else LimitsConfig()
        self.models = {name: limits for name, limits in (models or {}).items() if limits}
        self.routes = {key: limits for key, limits in (routes or {}).items() if limits}
        self.estimate_output_tokens = estimate_output_tokens
        self._direct = isinstance(store, MemoryLimitStore)
        self._prices: dict[tuple[str, str], Price | None] = {}  # by route and public model: tables are fixed
        prefix = uuid.uuid4().hex[:12]  # lease ids must be unique across instances sharing a store
        counter = itertools.count(1)
        self._next_id: Callable[[], str] = lambda: f"{prefix}{next(counter):x}"
        self.track_spend = track_spend
        # Claims worked out once per scope: models and routes now, accounts on first sight (a
        # custom key store may bring accounts the config never named).
        self._model_scopes = _scopes("model", self.models)
        self._route_scopes = _scopes("route", self.routes)
        self._account_scopes: dict[str, tuple[LimitsConfig, _Scope | None]] = {}

    @classmethod
    def from_config(cls, config: GatewayConfig, prices: PriceTable, store: LimitStore | None = None) -> Limits:
        routes: dict[str, LimitsConfig] = {}
        for model in config.models.values():
            for route in model.routes:
                if route.limits:
                    routes[f"{route.provider}/{route.model}"] = route.limits
        return cls(
            store=store if store is not None else MemoryLimitStore(),
            prices=prices,
            defaults=config.limits,
            models={name: model.limits for name, model in config.models.items()},
            routes=routes,
            estimate_output_tokens=config.estimate_output_tokens,
            track_spend=cls.configured(config),
        )

    @staticmethod
    def configured(config: GatewayConfig) -> bool:
        """Whether the config sets any limit at all (else the gateway adds no limit middleware)."""
        return bool(
            config.limits
            or any(k.limits for k in config.keys)
            or any(m.limits or any(r.limits for r in m.routes) for m in config.models.values())
        )

    def account_limits(self, account: Account) -> LimitsConfig:
        own = account.limits
        return own if own is not None else self.defaults

    def price(self, target: Target) -> Price | None:
        key = (target.key, target.public_model)
        if key not in self._prices:
            self._prices[key] = self.prices.lookup(target.provider.name, target.model, target.public_model)
        return self._prices[key]

    # -- admission -------------------------------------------------------------------------

    def _account_scope(self, account: Account) -> _Scope | None:
        own = self.account_limits(account)
        entry = self._account_scopes.get(account.name)
        if entry is None or entry[0] is not own:
            if len(self._account_scopes) >= _SCOPE_CACHE:
                self._account_scopes.clear()  # a key store with endless accounts: start over, never grow
            scope = _Scope.of(f"acct:{account.name}", own, spend=self.track_spend)
            entry = self._account_scopes[account.name] = (own, scope)
        return entry[1]

    async def admit(self, call: Call) -> Lease | None:
        """Reserve for `call` or raise the refusal; None when no limit applies to it."""
        account: Account = call.account if call.account is not None else ANONYMOUS
        own = self._account_scope(account)
        model = self._model_scopes.get(call.request.model)
        if own is None and model is None and not self.routes:
            return None
        est = estimate(call.request, call.candidates, self.estimate_output_tokens)
        cost = 0
        if (own is not None and own.budget is not None) or (model is not None and model.budget is not None):
            strict = (own is not None and own.capped) or (model is not None and model.capped)
            cost = self._cost_bound(call, est, strict=strict)
        claims: list[Claim] = []
        if own is not None:
            own.claims(claims, est, cost)
        if model is not None:
            model.claims(claims, est, cost)
        # With one candidate there is no other route to steer to, so its route limits are
        # decided in the same atomic step (one store call, not two, and a request its route
        # refuses takes nothing from the key or the model). The fallback loop's gate then
        # finds the route already admitted.
        route: _Scope | None = None
        if self._route_scopes and len(call.candidates) == 1:
            route = self._route_scopes.get(call.candidates[0].key)
        scoped = len(claims)
        if route is not None:
            route.claims(claims, est, 0)
        lease = Lease(self._next_id(), claims, (), est)
        if claims:
            admission = await self.store.admit(lease.id, claims)
            if not admission.admitted:
                standings = admission.standings  # made only now: a refusal is rare and needs words
                refused = [s for s in standings[:scoped] if not s.ok]
                if refused:
                    raise _refusal(refused, est)
                assert route is not None
                raise self._route_refusal(call, call.candidates[0], standings[scoped:])
            figures = admission.figures
            if route is not None:
                lease.claims = claims[:scoped]
                lease.routes[call.candidates[0].key] = claims[scoped:]
            lease.periods = [f[5] for f in figures[:scoped]]
            headers = ratelimit_headers(claims, figures)
            if headers:
                call.response_headers.update(headers)
        call.state[_LEASE] = lease
        return lease

    def _route_refusal(self, call: Call, target: Target, standings: Sequence[Standing]) -> RateLimitError:
        """What the fallback loop answers when its only route is at its own limit."""
        wait = _route_wait(standings)
        call.skipped.append((target, f"at its rate limit for {wait:.1f}s"))
        return RouteGate.exhausted(call.request.model, wait)

    def _cost_bound(self, call: Call, est: Estimate, *, strict: bool) -> int:
        """The most the request can cost at its priciest candidate; an unknown price only counts when `strict`."""
        most = 0
        for target in call.candidates:
            price = self.price(target)
            if price is None:
                if not strict:
                    continue  # spend is only being tracked: an unpriced route adds nothing
                # Startup refuses this for configured keys; an account from a custom key store
                # with a budget can still meet it, and must not use the model for free.
                raise RouteMWError(
                    f"Model '{call.request.model}' has no known price for route {target.key}, and your key has a "
                    "USD budget; the gateway's operator must add the price to `prices`.",
                    code="price_unknown",
                )
            bound = price.bound(est.input_bound, est.output)
            if bound > most:
                most = bound
        return most

    # -- settlement ------------------------------------------------------------------------

    async def settle(self, lease: Lease, call: Call, *, answered: bool) -> None:
        """Replace the reservation with what was used (`answered`), or release it; once."""
        if lease.settled:
            return
        lease.settled = True
        target = call.target if answered else None
        counts = call.meter.counts if call.meter is not None else None
        price = self.price(target) if target is not None else None
        cost: int | None = None
        if price is not None and counts is not None:
            cost = price.cost(counts)
        elif price is None and target is not None:
            cost = 0  # only tracked spend meets an unpriced route (budgets refuse them): it adds nothing
        await self._run(self._settle(lease, target, counts.total if counts else None, cost))

    async def _settle(self, lease: Lease, target: Target | None, tokens: int | None, cost: int | None) -> None:
        # One store call settles everything the request holds, its route's claims included:
        # those are rates, which hold nothing per lease, so they settle under the request's
        # lease as well as under the one they were admitted with. A request started stays
        # started (`rpm`, not refundable), so those claims are left out: settling them is a no-op.
        try:
            if target is None:
                claims: list[Claim] = []
                periods: list[str | None] = []
                for claim, period in zip(lease.claims, lease.periods, strict=True):
                    if _settles(claim):
                        claims.append(claim)
                        periods.append(period)
                for route_claims in lease.routes.values():
                    for claim in route_claims:
                        if _settles(claim):
                            claims.append(claim)
                            periods.append(None)
                if claims:
                    await self.store.release(lease.id, claims, periods)
                return
            # A rate whose use was what it reserved (a request count, tokens as estimated) has
            # nothing to settle: it holds nothing per lease. Slots and quotas always settle.
            settlements: list[Settlement] = []
            for claim, period in zip(lease.claims, lease.periods, strict=True):
                actual = _actual(claim, tokens, cost)
                if not isinstance(claim, Rate) or actual != claim.amount:
                    settlements.append(Settlement(claim, actual, period))
            for key, route_claims in lease.routes.items():
                answered = key == target.key
                for claim in route_claims:
                    if isinstance(claim, Rate) and claim.refundable:  # a route's requests stay counted
                        # A route tried and failed gets back all it reserved, as `release` would give.
                        actual = _actual(claim, tokens, cost) if answered else 0
                        if actual != claim.amount:
                            settlements.append(Settlement(claim, actual, None))
            if settlements:
                await self.store.reconcile(lease.id, settlements)
        except Exception:
            logger.exception("routemw: the limit store failed to settle lease %s", lease.id)

    async def _run(self, work: Coroutine[Any, Any, None]) -> None:
        if self._direct:
            await work  # never suspends: nothing can interrupt it
            return
        # A store doing I/O could be cancelled halfway (a client leaving); its own task is not.
        await asyncio.shield(asyncio.ensure_future(work))

    # -- state for GET /v1/key -------------------------------------------------------------

    async def key_state(self, account: Account) -> dict[str, Any]:
        own = self.account_limits(account)
        scope = self._account_scope(account)
        claims: list[Claim] = []
        if scope is not None:
            scope.claims(claims, Estimate(0, 0, 0, True), 0)
        standings = {s.claim.name: s for s in await self.store.inspect(claims)} if claims else {}
        budget = standings.get("budget")  # also there without a budget when spend is tracked
        capped = budget if own.budget is not None else None
        tokens = standings.get("tokens")
        rate: dict[str, Any] = {"interval": "1m", "requests": own.rpm, "tokens": own.tpm}
        rate["concurrency"] = own.concurrency
        if "rpm" in standings:
            rate["remaining_requests"] = standings["rpm"].remaining
        if "tpm" in standings:
            rate["remaining_tokens"] = standings["tpm"].remaining
        return {
            "label": account.name,
            "usage": budget.used / 1_000_000 if budget is not None else None,
            "usage_period": scope.budget[1] if scope is not None and scope.budget is not None else None,
            "limit": own.budget.micro_usd / 1_000_000 if own.budget is not None else None,
            "limit_remaining": capped.remaining / 1_000_000 if capped is not None else None,
            "limit_period": own.budget.period if own.budget is not None else None,
            "limit_reset": period_end(own.budget.period, capped.period)
            if own.budget and capped and capped.period
            else None,
            "expires_at": account.expires.isoformat().replace("+00:00", "Z") if account.expires else None,
            "rate_limit": rate,
            "tokens": (
                {
                    "limit": own.tokens.total if own.tokens else None,
                    "usage": tokens.used,
                    "remaining": tokens.remaining,
                    "period": own.tokens.period if own.tokens else None,
                }
                if tokens is not None
                else None
            ),
        }

    # -- startup ---------------------------------------------------------------------------

    def unpriced(self, config: GatewayConfig, catalog: Catalog) -> list[str]:
        """Problems: a model reachable by an account with a USD budget that has no known price."""
        problems: list[str] = []
        budgeted: list[tuple[str, frozenset[str]]] = [
            (f"keys[{i}] ({k.name})", frozenset(k.models))
            for i, k in enumerate(config.keys)
            if (k.limits if k.limits is not None else config.limits).budget is not None
        ]
        if config.limits.budget is not None and not config.keys:
            budgeted.append(("limits (the default budget)", frozenset({"*"})))
        budgeted += [(f"models.{n} (its budget)", frozenset({n})) for n, m in self.models.items() if m.budget]
        for who, models in budgeted:
            for entry in catalog:
                if "*" not in models and entry.id not in models:
                    continue
                allowed = (lambda m: True) if "*" in models else models.__contains__
                for target in catalog.candidates(entry.id, allowed):
                    if self.price(target) is None:
                        problems.append(
                            f"{who}: has a USD budget, but model '{entry.id}' (route {target.key}) has no known "
                            "price; add it to `prices`"
                        )
        return sorted(set(problems))


def _settles(claim: Claim) -> bool:
    """Whether settling `claim` can change anything: not for a request count, which stays counted."""
    return not (type(claim) is Rate and not claim.refundable)


def _actual(claim: Claim, tokens: int | None, cost: int | None) -> int:
    """What a settled request used of `claim`: what was reported, else what it reserved."""
    if isinstance(claim, Slots):
        return 0
    if claim.name == "budget":
        return cost if cost is not None else claim.amount
    if claim.name in ("tpm", "tokens"):
        return tokens if tokens is not None else claim.amount
    return claim.amount


def _route_wait(standings: Sequence[Standing]) -> float:
    """Seconds until a route's refused claims would pass; inf when waiting cannot help."""
    waits = [s.retry_after for s in standings if not s.ok]
    return math.inf if any(w is None for w in waits) else max(w for w in waits if w is not None)


def _refusal(refusals: Sequence[Standing], est: Estimate) -> RouteMWError:
    for standing in refusals:
        claim = standing.claim
        if isinstance(claim, Quota):
            return _quota_refusal(standing, claim)
    waits: list[tuple[float, Standing]] = []
    for standing in refusals:
        claim = standing.claim
        if isinstance(claim, Rate) and standing.retry_after is None:
            return RateLimitError(
                f"Request too large for {_scope(claim.group)}: it may use {claim.amount} tokens "
                f"(about {est.input_likely} in, up to {est.output} out) but the limit is {claim.limit} "
                f"{_WHAT[claim.name]}; send a smaller max_tokens or a shorter prompt.",
                kind=_KINDS[claim.name],
                retry_after=None,
            )
        waits.append((standing.retry_after if standing.retry_after is not None else _CONCURRENCY_RETRY, standing))
    wait, standing = max(waits, key=lambda pair: pair[0])
    claim = standing.claim
    assert not isinstance(claim, Quota)
    return RateLimitError(
        f"Rate limit reached for {_scope(claim.group)} on {_WHAT[claim.name]}: limit {claim.limit}. "
        f"Please try again in {duration(wait)}.",
        kind=_KINDS[claim.name],
        retry_after=wait,
    )


def _usd(micro: int) -> str:
    """Dollars with cents, and the micro-dollars only where there are any: $100.00, $0.074."""
    text = f"{micro / 1_000_000:,.6f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def _quota_refusal(standing: Standing, claim: Quota) -> QuotaExceededError:
    if claim.name == "budget":
        what = f"USD budget of {_usd(claim.limit)}"
        left, need = _usd(standing.remaining), _usd(claim.amount)
    else:
        what = f"quota of {claim.limit} tokens"
        left, need = f"{standing.remaining} tokens", f"{claim.amount} tokens"
    period = "in total" if claim.period == "total" else f"for the {claim.period} {standing.period}"
    ends = period_end(claim.period, standing.period) if standing.period is not None else None
    reset = "it does not reset" if ends is None else f"it resets at {ends}"
    used_up = standing.remaining <= 0
    detail = "is used up" if used_up else f"has {left} left, and this request may use up to {need}"
    limit = "budget" if claim.name == "budget" else "tokens_quota"
    return QuotaExceededError(f"Your API key's {what} {period} {detail}; {reset}.", limit=limit)


class LimitMiddleware:
    """Admits each request against every limit that applies and settles it when the reply ends.

    Put it after the capability check (a request refused as unsupported consumes nothing) and
    before fallback.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def __call__(self, call: Call, next: Handler) -> Reply:
        lease = await self.limits.admit(call)
        if lease is None:
            return await next(call)
        meter = call.meter
        if meter is None:
            meter = call.meter = Meter()
        try:
            reply = await next(call)
        except BaseException:
            await self.limits.settle(lease, call, answered=False)
            raise
        if isinstance(reply, Completion):
            meter.read(reply.data.get("usage"))
            await self.limits.settle(lease, call, answered=True)
            return reply

        async def on_end() -> None:
            await self.limits.settle(lease, call, answered=True)

        return meter.watch(reply, on_end=on_end)


class RouteGate:
    """Route limits for the fallback loop: may this target take the request now?"""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits

    async def admit(self, call: Call, target: Target) -> float | None:
        """None when admitted (reserved on the call's lease), else seconds until it would be (inf: never)."""
        route = self.limits._route_scopes.get(target.key)
        if route is None:
            return None
        lease: Lease | None = call.state.get(_LEASE)
        if lease is not None and target.key in lease.routes:
            return None  # reserved at admission, with the key and the model
        if lease is not None:
            est = lease.estimate
        else:
            est = estimate(call.request, [target], self.limits.estimate_output_tokens)
        claims: list[Claim] = []
        route.claims(claims, est, 0)  # a route has rates only
        lease_id = f"{lease.id}/{target.key}" if lease is not None else f"{self.limits._next_id()}/{target.key}"
        admission = await self.limits.store.admit(lease_id, claims)
        if not admission.admitted:
            return _route_wait(admission.standings)
        if lease is not None:
            lease.routes[target.key] = claims
        return None

    @staticmethod
    def exhausted(model: str, wait: float) -> RateLimitError:
        """The refusal when every candidate of `model` is at its route limit."""
        if math.isinf(wait):
            return RateLimitError(
                f"Every route of model '{model}' is smaller than this request; send a smaller max_tokens.",
                kind="tokens",
                retry_after=None,
            )
        return RateLimitError(
            f"Every route of model '{model}' is at its rate limit. Please try again in {duration(wait)}.",
            kind="requests",
            retry_after=wait,
        )
