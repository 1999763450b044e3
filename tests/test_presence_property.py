"""Presence is sacred, as a property: for random requests over random subsets of fields, with
falsy values over-represented, on every kind of target and under every parameter policy, each
field the client sent is forwarded (exactly, or in its translated spelling), or refused with a
400 naming it, or dropped/clamped and disclosed; and nothing the client did not send appears
upstream except `model` and the route's documented defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routemw import Gateway
from routemw.providers.echo import EchoProvider

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
FALSY: dict[str, Any] = {"number": 0, "integer": 0, "boolean": False, "string": "", "array": [], "object": {}}


def _field(kind: str, real: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Falsy values and null come up about half the time: they are where gateways go wrong.
    return st.one_of(st.just(FALSY[kind]), st.none(), real)


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "temperature": _field("number", st.sampled_from([0.0, 0.7, 1, 1.5, 2.5])),
    "top_p": _field("number", st.sampled_from([0.1, 1.0, 1])),
    "n": _field("integer", st.sampled_from([1, 2])),
    "stop": _field("array", st.sampled_from(["END", ["a"], ["a", "b", "c", "d", "e"]])),
    "max_tokens": _field("integer", st.sampled_from([16, 4096, 500_000])),
    "max_completion_tokens": _field("integer", st.sampled_from([16, 4096])),
    "presence_penalty": _field("number", st.sampled_from([0.5, -1.0])),
    "frequency_penalty": _field("number", st.sampled_from([0.5])),
    "logit_bias": _field("object", st.just({"50256": -100})),
    "logprobs": _field("boolean", st.just(True)),
    "top_logprobs": _field("integer", st.sampled_from([2])),
    "seed": _field("integer", st.sampled_from([42])),
    "user": _field("string", st.just("user-1")),
    "tools": _field("array", st.just([TOOL])),
    "tool_choice": _field("string", st.sampled_from(["none", "auto", "required"])),
    "parallel_tool_calls": _field("boolean", st.just(True)),
    "response_format": _field("object", st.sampled_from([{"type": "text"}, {"type": "json_object"}])),
    "reasoning_effort": _field("string", st.sampled_from(["low", "high"])),
    "metadata": _field("object", st.just({"k": "v"})),
    "store": _field("boolean", st.just(True)),
    "service_tier": _field("string", st.just("auto")),
    "stream": _field("boolean", st.just(True)),
    "stream_options": _field("object", st.sampled_from([{"include_usage": True}, {"include_usage": False}])),
    "x_future_param": _field("object", st.just({"nested": [0, False, ""]})),
}

requests = st.fixed_dictionaries(
    {"model": st.just("m")},
    optional={
        **FIELDS,
        "messages": st.sampled_from(
            [
                [{"role": "user", "content": "hi"}],
                [{"role": "developer", "content": ""}, {"role": "user", "content": "hi"}],
                [{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": ""}]}],
            ]
        ),
    },
).map(lambda body: {"messages": [{"role": "user", "content": "hi"}], **body})

# Each kind of target the gateway knows: OpenAI's own chat and reasoning families, an
# OpenAI-compatible server known only through config overrides, and the echo upstream.
TARGETS: dict[str, dict[str, Any]] = {
    "openai-chat": {"provider": "official", "model": "gpt-4o"},
    "openai-reasoning": {"provider": "official", "model": "o3"},
    "compatible": {
        "provider": "compat",
        "model": "llama",
        "capabilities": {"logprobs": False, "stream_usage": False, "max_output_tokens": 8192},
        "params": {"max_tokens": 1024, "temperature": 0},
    },
    "echo": {"provider": "echo", "model": "echo"},
}
ROUTE_DEFAULTS = {name: set(route.get("params", {})) for name, route in TARGETS.items()}
RENAMES = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}


def _same(a: Any, b: Any) -> bool:
    # JSON equality that tells 0 from false and 1 from 1.0's type-less twin `true`.
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(b, option=orjson.OPT_SORT_KEYS)


def _upstream(seen: list[dict[str, Any]]) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        seen.append(body)
        if body.get("stream") is True:
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
            events = [
                {**chunk, "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]},
                {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            ]
            sse = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=sse)
        choice = {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        return httpx.Response(
            200, json={"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [choice]}
        )

    return handle


def _gateways() -> dict[tuple[str, str], tuple[Gateway, list[dict[str, Any]]]]:
    built = {}
    for target, route in TARGETS.items():
        for policy in ("reject", "drop", "clamp"):
            seen: list[dict[str, Any]] = []
            config = {
                "providers": {
                    "official": {"type": "openai", "api_key": "sk-official-0000000000"},
                    "compat": {"type": "openai", "base_url": "http://compat.test/v1"},
                },
                "models": {"m": {"routes": [route]}},
                "params": {"unsupported": policy},
            }
            gateway = Gateway.from_config(config, transport=httpx.MockTransport(_upstream(seen)))
            echo = gateway.providers["echo"]
            assert isinstance(echo, EchoProvider)
            # The echo provider brings its own in-process upstream, which records what it got.
            built[(target, policy)] = (gateway, echo.upstream.requests if target == "echo" else seen)
    return built


GATEWAYS = _gateways()


def _echo_refuses(body: dict[str, Any], target: str) -> bool:
    # Echo is an upstream that answers as OpenAI does, and OpenAI refuses a `tool_choice` without
    # `tools`: the gateway forwards that request, and echo's own 400 comes back.
    return target == "echo" and body.get("tool_choice") is not None and not body.get("tools")


def _check(body: dict[str, Any], target: str, response: httpx.Response, seen: list[dict[str, Any]]) -> None:
    if response.status_code == 400 and seen and _echo_refuses(body, target):
        assert response.json()["error"]["param"] == "tool_choice"
        return
    assert not (response.status_code == 200 and _echo_refuses(body, target)), "echo answered an OpenAI 400"
    if response.status_code == 400:
        error = response.json()["error"]
        assert not seen, "a refused request must not reach the upstream"
        param = error["param"]
        assert param is not None and param.split("[")[0].split(".")[0] in body, error
        return
    assert response.status_code == 200, response.text
    assert len(seen) == 1
    sent = seen[0]
    dropped = set(filter(None, response.headers.get("x-routemw-dropped-params", "").split(", ")))
    clamped = set(filter(None, response.headers.get("x-routemw-clamped-params", "").split(", ")))
    for key, value in body.items():
        if key in dropped:
            assert key not in sent, key
        elif key in clamped:
            assert key in sent and not _same(sent[key], value), key
        elif key == "model":
            assert sent["model"] == TARGETS[target]["model"]
        elif key == "messages":
            expected = [{**m, "role": "system"} if m["role"] == "developer" else m for m in value]
            assert _same(sent[key], value) or _same(sent[key], expected)
        elif key in sent:
            assert _same(sent[key], value), (key, sent[key], value)
        else:
            renamed = RENAMES.get(key)
            assert renamed is not None and renamed in sent, f"{key} was lost without disclosure"
            assert _same(sent[renamed], value) or renamed in body, key
    for key in sent:
        if key not in body:
            allowed = ROUTE_DEFAULTS[target] | {RENAMES.get(k) for k in body} | {"model"}
            assert key in allowed, f"{key} appeared upstream though the client never sent it"
            if key in ROUTE_DEFAULTS[target]:
                assert _same(sent[key], TARGETS[target]["params"][key])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=requests, target=st.sampled_from(sorted(TARGETS)), policy=st.sampled_from(["reject", "drop", "clamp"]))
async def test_every_present_field_is_forwarded_refused_or_disclosed(
    body: dict[str, Any], target: str, policy: str
) -> None:
    gateway, seen = GATEWAYS[(target, policy)]
    seen.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post("/v1/chat/completions", content=orjson.dumps(body))
    _check(body, target, response, seen)


# -- translated providers --------------------------------------------------------------------
#
# For Anthropic and Gemini the upstream is the conformance fake of that provider, which rejects
# what the real API rejects, and reads its native request back into OpenAI terms. The property
# is the same: a present field arrives (as the canonical reading shows), or is refused by name,
# or is dropped and disclosed; the fake must never have to reject the translation.

# OpenAI field -> how the provider's canonical reading shows it, for the fields both express.
CANONICAL_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "seed": "seed",
    "user": "user",
}


def _translated_gateways() -> dict[tuple[str, str], tuple[Gateway, Any]]:
    from conformance.fake_anthropic import FakeAnthropic
    from conformance.fake_gemini import FakeGemini

    built: dict[tuple[str, str], tuple[Gateway, Any]] = {}
    for name, fake_type, model in (
        ("anthropic", FakeAnthropic, "claude-sonnet-4-5"),
        ("gemini", FakeGemini, "gemini-2.5-flash"),
    ):
        for policy in ("reject", "drop"):
            fake = fake_type("sk-translated-0000000000")
            config = {
                "providers": {"up": fake.provider_config},
                "models": {"m": {"routes": [{"provider": "up", "model": model}]}},
                "params": {"unsupported": policy},
                "retry": {"attempts": 1},
            }
            built[(name, policy)] = (Gateway.from_config(config, transport=httpx.MockTransport(fake), environ={}), fake)
    return built


TRANSLATED = _translated_gateways()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=requests, provider=st.sampled_from(["anthropic", "gemini"]), policy=st.sampled_from(["reject", "drop"]))
async def test_translated_providers_lose_no_field_silently(body: dict[str, Any], provider: str, policy: str) -> None:
    gateway, fake = TRANSLATED[(provider, policy)]
    fake.requests.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post("/v1/chat/completions", content=orjson.dumps(body))
    if response.status_code == 400:
        error = response.json()["error"]
        assert fake.requests == [], error  # refused by the gateway, never by the provider
        assert error["param"] is not None and error["param"].split("[")[0].split(".")[0] in body, error
        return
    assert response.status_code == 200, response.text
    assert len(fake.requests) == 1
    dropped = set(filter(None, response.headers.get("x-routemw-dropped-params", "").split(", ")))
    profile = gateway.catalog.get("m").targets[0].profile  # type: ignore[union-attr]
    accepted = profile.accepted_params or frozenset()
    canonical = fake.canonical()
    for key, value in body.items():
        if key in dropped:
            continue
        # Whatever was not dropped must be something this adapter translates...
        assert key in accepted, f"{key} was neither translated, refused nor disclosed"
        # ...and where both sides express it, with the value the client sent.
        if key in CANONICAL_FIELDS and value is not None:
            shown = getattr(canonical, CANONICAL_FIELDS[key])
            if key == "max_tokens" and "max_completion_tokens" in body:
                continue  # the client's max_completion_tokens wins over max_tokens
            assert _same(shown, value) or shown == value, (key, shown, value)
