"""Keep only the candidates that can serve what the request needs, before any upstream call.

For each candidate the request's needs (`routemw.capabilities.needs`) are checked against the
target's profile, and each request field the target cannot take is settled by the parameter
policy: `reject` makes the target ineligible (routing then prefers one that can honour the
request), `drop` sends the request without the field, `clamp` also pulls out-of-range values
into range. What is dropped or clamped is disclosed in `x-routemw-dropped-params` and
`x-routemw-clamped-params` by whichever target answers. If no candidate is left, the client
gets a 400 `unsupported_parameter` naming the field, the model and what is missing.

The policy comes from the caller's key, else the model, else the config's `params`.

A request from another door (`call.request.native`) is checked only against the targets that
must translate it. A target that speaks the door's protocol gets the client's own request, so
its upstream is the judge of it, exactly as if the client had called it directly; the canonical
translation is not what it would receive. A translating target is refused for the fields the
translation could not carry (`native.untranslatable`).

The kind of request comes first (`ChatRequest.kind`): an embeddings request goes only to routes
whose profile says `embeddings: true`, a chat request never to one of those, and a Responses
request only to routes that pass it through (OpenAI's own protocol) and do not say
`responses: false`. Each refusal names `model`: it is the model, not a field, that is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..accounts import ANONYMOUS, Account
from ..capabilities import LIMITS, Need, needs
from ..config.schema import UnsupportedPolicy
from ..errors import InvalidRequestError, echo
from ..native import passes_through
from ..pipeline import Call, Handler
from ..providers.base import Target
from ..reply import Reply

__all__ = ["CapabilityMiddleware", "Refusal", "assess"]

logger = logging.getLogger("routemw")

_NUMBER = (int, float)
# Capabilities that hang on fields a request still makes sense without: under `drop` (or `clamp`)
# a target lacking one gets the request without those fields, disclosed, instead of being
# skipped. The others (tools, images, JSON modes, forced tool choice...) change what the answer
# is, so a target lacking them is always skipped.
_DROPPABLE: dict[str, tuple[str, ...]] = {
    "parallel_tool_calls": ("parallel_tool_calls",),
    "reasoning_effort": ("reasoning_effort",),
    "logprobs": ("logprobs", "top_logprobs"),
}
_NEUTRAL = {"temperature": 1, "top_p": 1}  # OpenAI's defaults: sending them changes nothing


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a target cannot serve a request: the request field, and what is missing."""

    param: str
    reason: str


def assess(
    target: Target, request_needs: Sequence[Need], body: Mapping[str, Any], policy: UnsupportedPolicy
) -> Target | Refusal:
    """`target`, adjusted for this request if it must drop or clamp something, or a `Refusal`."""
    profile = target.profile
    route = target.key
    drop: set[str] = set()
    for need in request_needs:
        if need.capability in LIMITS:
            limit = profile.limit(str(need.capability))
            if limit is not None and need.amount is not None and need.amount > limit:
                return Refusal(need.param, f"route {route} allows at most {limit} tokens ({need.capability})")
        elif profile.supports(need.capability) is False:
            fields = _DROPPABLE.get(str(need.capability))
            if fields is None or policy == "reject":
                return Refusal(need.param, f"route {route} does not support {need.capability}")
            drop.update(field for field in fields if field in body)
    clamp: dict[str, Any] = {}
    unsupported = [key for key in profile.unsupported_params if key in body]
    if profile.accepted_params is not None:
        unsupported += [key for key in body if key not in profile.accepted_params and key not in unsupported]
    for key in unsupported:
        if body[key] is None or policy != "reject":
            drop.add(key)  # a null asks for the default, which leaving the field out also gives
        else:
            return Refusal(key, f"route {route} does not support the parameter `{key}`")
    for group in profile.exclusive_params:
        present = [key for key in group if body.get(key) is not None]
        if len(present) < 2:
            continue
        if policy == "reject":
            return Refusal(present[1], f"route {route} accepts only one of {', '.join(f'`{k}`' for k in group)}")
        # Keep the one that says something: a field at its neutral value (temperature 1) carries
        # no intent, so it goes first; otherwise the group's first field is kept.
        keep = next((key for key in present if body[key] != _NEUTRAL.get(key)), present[0])
        drop.update(key for key in present if key != keep)
    for key, (low, high) in profile.ranges.items():
        value = body.get(key)
        if isinstance(value, _NUMBER) and not isinstance(value, bool) and not low <= value <= high:
            if policy == "reject":
                return Refusal(key, f"route {route} accepts `{key}` only from {low:g} to {high:g}, not {value:g}")
            if policy == "clamp":
                clamp[key] = min(max(value, low), high)
            else:
                drop.add(key)
    stop = body.get("stop")
    if profile.max_stop is not None and isinstance(stop, list) and len(stop) > profile.max_stop:
        if policy == "reject":
            return Refusal("stop", f"route {route} accepts at most {profile.max_stop} stop sequences")
        if policy == "clamp":
            clamp["stop"] = stop[: profile.max_stop]
        else:
            drop.add("stop")
    rejects_options = not profile.stream_options or profile.supports("stream_usage") is False
    if "stream_options" in body and rejects_options and not _wants_usage(body):
        drop.add("stream_options")  # nothing is asked of it, and the target would reject the field
    if not drop and not clamp:
        return target
    return replace(target, drop=frozenset(drop), clamp=clamp)


def _wants_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class CapabilityMiddleware:
    """Filters `call.candidates`; put it after resolution and before fallback."""

    def __init__(
        self, policy: UnsupportedPolicy = "reject", model_policies: Mapping[str, UnsupportedPolicy] | None = None
    ) -> None:
        self.policy = policy
        self.model_policies = dict(model_policies or {})

    async def __call__(self, call: Call, next: Handler) -> Reply:
        account: Account = call.account if call.account is not None else ANONYMOUS
        request_needs = needs(call.request)
        body = call.request.body
        native = call.request.native
        kept: list[Target] = []
        refusals: list[Refusal] = []
        kind = call.request.kind
        for target in call.candidates:
            policy = account.unsupported_params or self.model_policies.get(target.public_model) or self.policy
            verdict: Target | Refusal
            embeddings = target.profile.support.get("embeddings") is True
            if kind == "chat" and embeddings:
                verdict = Refusal("model", f"route {target.key} serves embeddings, not chat")
            elif kind == "embeddings":
                verdict = target if embeddings else Refusal("model", f"route {target.key} is not an embeddings model")
            elif kind == "responses":
                verdict = (
                    target
                    if passes_through(target.provider, native)
                    and not embeddings
                    and target.profile.supports("responses") is not False
                    else Refusal("model", f"route {target.key} has no Responses API")
                )
            elif native is None:
                verdict = assess(target, request_needs, body, policy)
            elif passes_through(target.provider, native):
                verdict = target
            elif native.untranslatable:
                verdict = Refusal(
                    native.untranslatable[0], f"route {target.key} cannot express it outside {native.protocol}"
                )
            else:
                verdict = assess(target, request_needs, body, policy)
            if isinstance(verdict, Refusal):
                refusals.append(verdict)
                call.skipped.append((target, verdict.reason))
                logger.debug("routemw: request %s: skipped %r: %s", call.request_id, target, verdict.reason)
            else:
                kept.append(verdict)
                if refusals:
                    call.unfit_ahead[verdict] = len(refusals)
        if not kept:
            first = refusals[0]
            raise InvalidRequestError(
                f"Model '{echo(call.request.model)}' cannot serve this request: {first.reason}"
                f" (needed by `{first.param}`), and no other route or fallback can.",
                param=first.param,
                code="unsupported_parameter",
            )
        call.candidates = kept
        return await next(call)
