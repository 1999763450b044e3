"""Capability-aware routing and the parameter policy, through the whole gateway."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from routemw import Gateway

USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.test/cat.png"}}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
}


def _sse() -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    events = [
        {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}]},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class Upstreams:
    """Records which host got which body; every upstream answers a plain completion."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.calls.append((request.url.host, body))
        if body.get("stream"):
            return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=_sse())
        return httpx.Response(200, json=COMPLETION)

    @property
    def hosts(self) -> list[str]:
        return [host for host, _ in self.calls]


def _gateway(config: dict[str, Any], upstreams: Upstreams) -> Gateway:
    base = {
        "providers": {
            "weak": {"type": "openai", "base_url": "https://weak.test/v1"},
            "strong": {"type": "openai", "base_url": "https://strong.test/v1"},
            "official": {"type": "openai", "api_key": "sk-official-key-1234567"},
        }
    }
    return Gateway.from_config({**base, **config}, transport=httpx.MockTransport(upstreams))


async def _post(gateway: Gateway, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers or {})


def _chat(model: str, **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [USER], **fields}


@pytest.mark.parametrize(
    ("fields", "capability", "param"),
    [
        ({"tools": [TOOL]}, "tools", "tools"),
        ({"tools": [TOOL], "tool_choice": "required"}, "tool_choice", "tool_choice"),
        ({"tools": [TOOL], "parallel_tool_calls": False}, "parallel_tool_calls", "parallel_tool_calls"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "json_schema", "response_format"),
        ({"response_format": {"type": "json_object"}}, "json_object", "response_format"),
        ({"stream": True, "stream_options": {"include_usage": True}}, "stream_usage", "stream_options"),
        ({"stream": True}, "streaming", "stream"),
        ({"logprobs": True}, "logprobs", "logprobs"),
        ({"n": 2}, "multiple_choices", "n"),
        ({"reasoning_effort": "high"}, "reasoning_effort", "reasoning_effort"),
    ],
)
async def test_unsupported_capability_skips_the_route_then_400_names_the_field(
    fields: dict[str, Any], capability: str, param: str
) -> None:
    upstreams = Upstreams()
    config = {
        "models": {
            "both": {
                "routes": [
                    {"provider": "weak", "model": "w", "capabilities": {capability: False}},
                    {"provider": "strong", "model": "s"},
                ]
            },
            "weak-only": {"routes": [{"provider": "weak", "model": "w"}], "capabilities": {capability: False}},
        }
    }
    gateway = _gateway(config, upstreams)
    served = await _post(gateway, _chat("both", **fields))
    assert served.status_code == 200, served.text
    assert served.headers["x-routemw-provider"] == "strong"
    assert upstreams.hosts == ["strong.test"]  # the weak route was never called

    refused = await _post(gateway, _chat("weak-only", **fields))
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "unsupported_parameter"
    assert error["param"] == param
    assert "weak-only" in error["message"] and capability in error["message"]
    assert upstreams.hosts == ["strong.test"]


async def test_image_refusal_names_the_content_part() -> None:
    upstreams = Upstreams()
    config = {"models": {"text": {"routes": [{"provider": "weak", "model": "w"}], "capabilities": {"vision": False}}}}
    messages = [
        USER,
        {"role": "assistant", "content": "yes"},
        {"role": "user", "content": [{"type": "text", "text": "see"}, IMAGE]},
    ]
    response = await _post(_gateway(config, upstreams), {"model": "text", "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[2].content[1]"
    assert upstreams.calls == []


async def test_unknown_support_passes() -> None:
    upstreams = Upstreams()
    config = {"models": {"m": {"routes": [{"provider": "weak", "model": "w"}]}}}
    response = await _post(_gateway(config, upstreams), _chat("m", tools=[TOOL], logprobs=True, n=3))
    assert response.status_code == 200
    assert upstreams.calls[0][1]["tools"] == [TOOL]


async def test_fallback_models_are_checked_too() -> None:
    upstreams = Upstreams()
    config = {
        "models": {
            "main": {
                "routes": [{"provider": "weak", "model": "w"}],
                "capabilities": {"tools": False},
                "fallbacks": ["alt", "good"],
            },
            "alt": {"routes": [{"provider": "weak", "model": "a"}], "capabilities": {"tools": False}},
            "good": {"routes": [{"provider": "strong", "model": "g"}]},
        }
    }
    gateway = _gateway(config, upstreams)
    response = await _post(gateway, _chat("main", tools=[TOOL]))
    assert response.status_code == 200
    assert response.headers["x-routemw-route-model"] == "g"
    assert [body["model"] for _, body in upstreams.calls] == ["g"]

    config["models"]["main"]["fallbacks"] = ["alt"]
    response = await _post(_gateway(config, upstreams), _chat("main", tools=[TOOL]))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "tools"


async def test_output_limit_is_a_fit_check() -> None:
    upstreams = Upstreams()
    config = {
        "models": {
            "m": {
                "routes": [
                    {"provider": "weak", "model": "small", "capabilities": {"max_output_tokens": 1000}},
                    {"provider": "strong", "model": "big", "capabilities": {"max_output_tokens": 64000}},
                ]
            }
        }
    }
    gateway = _gateway(config, upstreams)
    assert (await _post(gateway, _chat("m", max_tokens=1000))).headers["x-routemw-route-model"] == "small"
    assert (await _post(gateway, _chat("m", max_tokens=1001))).headers["x-routemw-route-model"] == "big"
    too_big = await _post(gateway, _chat("m", max_completion_tokens=100000))
    assert too_big.status_code == 400
    assert too_big.json()["error"]["param"] == "max_completion_tokens"


async def test_reasoning_model_rejects_sampling_by_default_and_renames_max_tokens() -> None:
    upstreams = Upstreams()
    config = {"models": {"o3": {"routes": [{"provider": "official", "model": "o3"}]}}}
    gateway = _gateway(config, upstreams)
    refused = await _post(gateway, _chat("o3", temperature=0))
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "temperature"
    refused = await _post(gateway, _chat("o3", presence_penalty=0))
    assert refused.json()["error"]["param"] == "presence_penalty"

    ok = await _post(gateway, _chat("o3", temperature=1, max_tokens=0))
    assert ok.status_code == 200
    sent = upstreams.calls[-1][1]
    assert sent["temperature"] == 1 and sent["max_completion_tokens"] == 0 and "max_tokens" not in sent


async def test_drop_policy_sends_without_and_discloses() -> None:
    upstreams = Upstreams()
    config = {
        "models": {"o3": {"routes": [{"provider": "official", "model": "o3"}]}},
        "params": {"unsupported": "drop"},
    }
    response = await _post(_gateway(config, upstreams), _chat("o3", temperature=0, logit_bias={}, seed=0))
    assert response.status_code == 200
    assert response.headers["x-routemw-dropped-params"] == "logit_bias, temperature"
    sent = upstreams.calls[-1][1]
    assert "temperature" not in sent and "logit_bias" not in sent
    assert sent["seed"] == 0  # supported, so kept exactly


async def test_clamp_policy_clamps_and_discloses() -> None:
    upstreams = Upstreams()
    config = {
        "models": {"gpt": {"routes": [{"provider": "official", "model": "gpt-4o"}]}},
        "params": {"unsupported": "clamp"},
    }
    response = await _post(_gateway(config, upstreams), _chat("gpt", temperature=2.5, stop=["a", "b", "c", "d", "e"]))
    assert response.status_code == 200
    assert response.headers["x-routemw-clamped-params"] == "stop, temperature"
    sent = upstreams.calls[-1][1]
    assert sent["temperature"] == 2.0 and sent["stop"] == ["a", "b", "c", "d"]


async def test_too_many_stop_sequences_is_refused_under_reject() -> None:
    upstreams = Upstreams()
    config = {"models": {"gpt": {"routes": [{"provider": "official", "model": "gpt-4o"}]}}}
    response = await _post(_gateway(config, upstreams), _chat("gpt", stop=["a", "b", "c", "d", "e"]))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "stop"


async def test_policy_per_model_and_per_key_with_key_winning() -> None:
    upstreams = Upstreams()
    config = {
        "models": {
            "strict": {"routes": [{"provider": "official", "model": "o3"}]},
            "lenient": {"routes": [{"provider": "official", "model": "o3"}], "params": {"unsupported": "drop"}},
        },
        "keys": [
            {"name": "plain", "key": "sk-plain-key-00000001", "models": ["*"]},
            {"name": "dropper", "key": "sk-dropper-key-000002", "models": ["*"], "params": {"unsupported": "drop"}},
        ],
        "auth": {"mode": "keys"},
    }
    gateway = _gateway(config, upstreams)
    plain = {"x-api-key": "sk-plain-key-00000001"}
    assert (await _post(gateway, _chat("strict", top_p=0.5), plain)).status_code == 400
    assert (await _post(gateway, _chat("lenient", top_p=0.5), plain)).headers["x-routemw-dropped-params"] == "top_p"
    dropper = {"x-api-key": "sk-dropper-key-000002"}
    assert (await _post(gateway, _chat("strict", top_p=0.5), dropper)).headers["x-routemw-dropped-params"] == "top_p"


async def test_parallel_tool_calls_without_tools_is_removed_and_disclosed() -> None:
    upstreams = Upstreams()
    config = {"models": {"m": {"routes": [{"provider": "weak", "model": "m"}]}}}
    response = await _post(_gateway(config, upstreams), _chat("m", parallel_tool_calls=False, tools=[]))
    assert response.status_code == 200
    assert response.headers["x-routemw-dropped-params"] == "parallel_tool_calls"
    assert "parallel_tool_calls" not in upstreams.calls[0][1]
    assert upstreams.calls[0][1]["tools"] == []


async def test_stream_options_not_forwarded_where_stream_usage_is_unsupported() -> None:
    calls: list[dict[str, Any]] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        calls.append(orjson.loads(request.content))
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        events = [
            {
                **chunk,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "ok"}, "finish_reason": None}],
            },
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    config = {
        "providers": {"old": {"type": "openai", "base_url": "https://old.test/v1"}},
        "models": {"m": {"routes": [{"provider": "old", "model": "m", "capabilities": {"stream_usage": False}}]}},
    }
    gateway = Gateway.from_config(config, transport=httpx.MockTransport(upstream))
    response = await _post(gateway, _chat("m", stream=True, stream_options={"include_usage": False}))
    assert response.status_code == 200
    assert "stream_options" not in calls[0]
    assert response.headers["x-routemw-dropped-params"] == "stream_options"
    refused = await _post(gateway, _chat("m", stream=True, stream_options={"include_usage": True}))
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "stream_options"


async def test_developer_role_becomes_system_where_the_target_lacks_it() -> None:
    from routemw.capabilities import Profile
    from routemw.providers.base import Target
    from routemw.providers.normalize import normalize_openai

    class _Provider:
        name = "p"

    body = {"model": "m", "messages": [{"role": "developer", "content": "rules"}, USER]}
    target = Target(provider=_Provider(), model="m", public_model="m", profile=Profile(developer_role=False))  # type: ignore[arg-type]
    out = normalize_openai(body, target)
    assert out["messages"][0] == {"role": "system", "content": "rules"}
    assert body["messages"][0]["role"] == "developer"  # the client's request is untouched
    same = Target(provider=_Provider(), model="m", public_model="m")  # type: ignore[arg-type]
    assert normalize_openai(body, same) is body


async def test_models_endpoint_carries_capability_flags() -> None:
    upstreams = Upstreams()
    config = {
        "models": {
            "gpt": {"routes": [{"provider": "official", "model": "gpt-4o"}], "capabilities": {"vision": False}},
            "compat": {"routes": [{"provider": "weak", "model": "x"}]},
        }
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_gateway(config, upstreams)), base_url="http://gw"
    ) as c:
        cards = {m["id"]: m for m in (await c.get("/v1/models")).json()["data"]}
    assert cards["gpt"]["capabilities"]["tools"] is True
    assert cards["gpt"]["capabilities"]["vision"] is False
    assert cards["gpt"]["capabilities"]["max_output_tokens"] == 16384
    assert cards["compat"]["capabilities"]["tools"] is None  # unknown


@pytest.mark.parametrize(
    ("policy", "fields", "status", "sent", "dropped"),
    [
        ("reject", {"temperature": 0.2, "top_p": 0.9}, 400, None, None),
        ("drop", {"temperature": 0.2, "top_p": 0.9}, 200, {"temperature": 0.2}, "top_p"),
        ("drop", {"temperature": 1, "top_p": 0.5}, 200, {"top_p": 0.5}, "temperature"),
        ("clamp", {"temperature": 0, "top_p": 1}, 200, {"temperature": 0}, "top_p"),
        ("reject", {"temperature": 0, "top_p": None}, 200, {"temperature": 0}, None),
    ],
)
async def test_fields_a_target_takes_only_one_of_follow_the_policy(
    policy: str, fields: dict[str, Any], status: int, sent: dict[str, Any] | None, dropped: str | None
) -> None:
    bodies: list[dict[str, Any]] = []

    def anthropic(request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        bodies.append(body)
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        return httpx.Response(200, json=message)

    config = {
        "providers": {
            "claude": {"type": "anthropic", "base_url": "https://anthropic.test", "api_key": "sk-ant-0000000"}
        },
        "models": {"c": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
        "params": {"unsupported": policy},
    }
    gateway = Gateway.from_config(config, transport=httpx.MockTransport(anthropic), environ={})
    response = await _post(gateway, _chat("c", **fields))
    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"]["param"] == "top_p"
        assert bodies == []
        return
    assert sent is not None
    assert {k: bodies[0][k] for k in ("temperature", "top_p") if k in bodies[0]} == sent
    assert response.headers.get("x-routemw-dropped-params") == dropped


@pytest.mark.parametrize(
    ("capability", "fields", "dropped"),
    [
        ("parallel_tool_calls", {"tools": [TOOL], "parallel_tool_calls": False}, "parallel_tool_calls"),
        ("reasoning_effort", {"reasoning_effort": "low"}, "reasoning_effort"),
        ("logprobs", {"logprobs": True, "top_logprobs": 2}, "logprobs, top_logprobs"),
    ],
)
async def test_a_field_like_capability_is_dropped_and_disclosed_under_drop(
    capability: str, fields: dict[str, Any], dropped: str
) -> None:
    upstreams = Upstreams()
    model = {"routes": [{"provider": "weak", "model": "w"}], "capabilities": {capability: False}}
    strict = _gateway({"models": {"m": model}}, upstreams)
    assert (await _post(strict, _chat("m", **fields))).status_code == 400
    lenient = _gateway({"models": {"m": model}, "params": {"unsupported": "drop"}}, upstreams)
    response = await _post(lenient, _chat("m", **fields))
    assert response.status_code == 200
    assert response.headers["x-routemw-dropped-params"] == dropped
    sent = upstreams.calls[-1][1]
    assert all(key not in sent for key in dropped.split(", "))


async def test_a_capability_that_changes_the_answer_is_never_dropped() -> None:
    upstreams = Upstreams()
    model = {"routes": [{"provider": "weak", "model": "w"}], "capabilities": {"tools": False}}
    gateway = _gateway({"models": {"m": model}, "params": {"unsupported": "drop"}}, upstreams)
    response = await _post(gateway, _chat("m", tools=[TOOL]))
    assert response.status_code == 400 and response.json()["error"]["param"] == "tools"
    assert upstreams.calls == []
