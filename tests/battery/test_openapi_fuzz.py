"""OpenAI's own OpenAPI spec, turned into generated requests against the gateway.

Schemathesis derives requests for the operations routemw serves (`POST /chat/completions`,
`GET /models`, `GET /models/{model}`) from `tests/recordings/openai/openapi.yaml`, the official
spec, mostly valid and some deliberately not. Each is sent to the gateway at the ASGI message
level, in front of three kinds of target: the embedded `echo`, an OpenAI passthrough and the
Anthropic translation. Whatever the request, the gateway must never answer 5xx, a success must
be valid against the spec (every SSE chunk against the stream chunk schema), and a refusal must
be OpenAI's error envelope.

The run is bounded (a fixed seed through `derandomize`, a fixed number of examples) so it stays a
few seconds; the black-box run that found the issues behind it used about 58,000 requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, Final

import anyio
import httpx
import jsonschema_rs
import orjson
import pytest
import schemathesis
import yaml
from conformance.fake_anthropic import FakeAnthropic
from conformance.fake_gemini import FakeGemini
from fakes import API_KEY, RECORDINGS, FakeOpenAI, data_payloads, drive
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.schemas import OpenApiSchema

from routemw import Gateway

SERVED: Final = {"/chat/completions": ("post",), "/models": ("get",), "/models/{model}": ("get",)}
EXAMPLES: Final = {"echo": 100, "passthrough": 60, "anthropic": 80, "gemini": 80}


@cache
def openai_spec() -> dict[str, Any]:
    """The official spec cut down to the operations routemw serves (components kept whole)."""
    loaded = yaml.load((RECORDINGS / "openai" / "openapi.yaml").read_bytes(), Loader=yaml.CSafeLoader)
    # YAML turns dates in examples into `date` objects, which no JSON validator takes.
    raw: dict[str, Any] = json.loads(json.dumps(loaded, default=str))
    raw["paths"] = {path: {m: raw["paths"][path][m] for m in methods} for path, methods in SERVED.items()}
    raw["servers"] = [{"url": "/v1"}]
    return raw


@cache
def openai_schema() -> OpenApiSchema:
    return schemathesis.openapi.from_dict(openai_spec())


@cache
def _validator(name: str) -> jsonschema_rs.Draft202012Validator:
    """A validator for one component schema, resolving `$ref`s against the whole spec."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": _nullable(openai_spec()["components"])}
    return jsonschema_rs.Draft202012Validator(schema)


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true`, which the spec still uses, as JSON Schema's `null` type.

    OpenAI's own streams send `"logprobs": null` where the spec says `type: object, nullable: true`;
    a plain JSON Schema validator ignores `nullable` and would call the genuine wire invalid.
    """
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "$ref" in out or "allOf" in out or "anyOf" in out or "oneOf" in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _gateways() -> Iterator[tuple[str, Callable[[], Gateway]]]:
    def echo() -> Gateway:
        return Gateway.from_config(None, environ={})

    def passthrough() -> Gateway:
        upstream = FakeOpenAI(api_key=API_KEY)
        config = {
            "providers": {"openai": {"type": "openai", "base_url": "https://api.openai.test/v1", "api_key": API_KEY}},
            "models": {"gpt-4o": {"routes": [{"provider": "openai", "model": "gpt-4o"}]}},
        }
        return Gateway.from_config(config, environ={}, transport=httpx.MockTransport(upstream))

    def anthropic() -> Gateway:
        upstream = FakeAnthropic(api_key="sk-ant-test")
        config = {
            "providers": {"claude": upstream.provider_config},
            "models": {"gpt-4o": {"routes": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}},
            # Under `drop`, fields the target lacks are dropped and their names disclosed in a
            # header: generated field names (any Unicode, CR/LF) must not break the response.
            "params": {"unsupported": "drop"},
        }
        return Gateway.from_config(config, environ={}, transport=upstream.transport())

    def gemini() -> Gateway:
        upstream = FakeGemini(api_key="gm-test-key")
        config = {
            "providers": {"gemini": upstream.provider_config},
            "models": {"gpt-4o": {"routes": [{"provider": "gemini", "model": "gemini-2.5-flash"}]}},
            "params": {"unsupported": "clamp"},
        }
        return Gateway.from_config(config, environ={}, transport=httpx.MockTransport(upstream))

    yield "echo", echo
    yield "passthrough", passthrough
    yield "anthropic", anthropic
    yield "gemini", gemini


TARGETS: Final = dict(_gateways())


def _check_answer(status: int, content_type: str, body: bytes) -> None:
    assert status < 500, f"{status}: {body[:500]!r}"
    if status >= 400:
        error = orjson.loads(body)["error"]
        assert isinstance(error["message"], str) and error["message"]
        assert isinstance(error["type"], str)
        assert "param" in error and "code" in error
        return
    if content_type.startswith("text/event-stream"):
        payloads = data_payloads(body)
        assert payloads[-1] == b"[DONE]", payloads[-1:]
        for payload in payloads[:-1]:
            chunk = orjson.loads(payload)
            assert "error" not in chunk, chunk
            _validator("CreateChatCompletionStreamResponse").validate(chunk)
    else:
        _validator("CreateChatCompletionResponse").validate(orjson.loads(body))


@pytest.mark.parametrize("target", list(TARGETS))
def test_generated_chat_requests_never_get_a_server_error(target: str) -> None:
    operation = openai_schema()["/chat/completions"]["POST"]
    gateway = TARGETS[target]()
    # Generated bodies name arbitrary models; half of them are steered to the one that exists, so
    # the run reaches the adapters rather than stopping at the model lookup.
    model = "echo" if target == "echo" else "gpt-4o"

    @settings(
        max_examples=EXAMPLES[target],
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # report the first failure as found: shrinking costs minutes
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), steer=st.booleans())
    def run(case: Any, steer: bool) -> None:
        body = case.body
        if steer and isinstance(body, dict):
            body = {**body, "model": model}
        raw = json.dumps(body if body is not None else {}).encode()  # stdlib: integers of any size
        headers = [("content-type", "application/json")]
        driver = anyio.run(lambda: drive(gateway, body=raw, headers=headers, seconds=10))
        _check_answer(driver.status, driver.header("content-type") or "", driver.body)

    run()


@pytest.mark.parametrize("target", ["echo"])
def test_generated_model_lookups_never_get_a_server_error(target: str) -> None:
    gateway = TARGETS[target]()
    operation = openai_schema()["/models/{model}"]["GET"]

    @settings(max_examples=40, derandomize=True, deadline=None, database=None, phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        path = "/v1" + case.formatted_path
        driver = anyio.run(lambda: drive(gateway, method="GET", path=path, seconds=10))
        assert driver.status < 500
        body = orjson.loads(driver.body)
        if driver.status == 200:
            _validator("Model").validate(body)
        else:
            assert set(body["error"]) >= {"message", "type", "param", "code"}

    run()
