"""`/v1/embeddings` through the gateway, at the ASGI message level, against strict fakes.

OpenAI and Azure routes get the client's body (its bytes when nothing changes) and their
answer back untouched; Gemini routes get `batchEmbedContents`, validated against Google's
OpenAPI file, and the answer translated back (dimensions, base64 made by the gateway, usage
estimated). Inputs over a route's batch limit are split and joined in order, and one failing
batch fails the request. Bad fields are 400s naming them; the wrong kind of model is a 400
naming `model`. Limits and usage records count the input tokens.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import httpx
import pytest
from fake_doors import FakeGeminiEmbed, FakeOpenAIDoors
from fakes import API_KEY, answer_error, answer_json, drive, route_hosts

from routemw import Gateway
from routemw.limits import MemoryLimitStore
from routemw.usage import UsageRecord

KEY = "sk-team-a-0123456789abcdef"
AUTH = [("authorization", f"Bearer {KEY}")]


def document(routes: list[dict[str, Any]], *, limits: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    account: dict[str, Any] = {"name": "team-a", "key": KEY, "models": ["*"]}
    if limits is not None:
        account["limits"] = limits
    return {
        "providers": {
            "oai": {"type": "openai", "base_url": "https://openai.test/v1", "api_key": API_KEY, "profiles": "openai"},
            "az": {"type": "azure", "base_url": "https://res.openai.azure.test", "api_key": "az-key-123456789"},
            "gm": FakeGeminiEmbed().provider_config,
        },
        "models": {
            "embed": {"routes": routes},
            "chat": {"routes": [{"provider": "oai", "model": "gpt-4o"}]},
        },
        "keys": [account],
        "auth": {"mode": "keys"},
        "retry": {"attempts": 1},
        **extra,
    }


OPENAI_ROUTE = {"provider": "oai", "model": "text-embedding-3-small"}
GEMINI_ROUTE = {"provider": "gm", "model": "gemini-embedding-001"}


def build(
    doc: dict[str, Any], openai: FakeOpenAIDoors | None = None, gemini: FakeGeminiEmbed | None = None, **kw: Any
) -> Gateway:
    hosts = {
        "openai.test": openai or FakeOpenAIDoors(),
        "res.openai.azure.test": openai or FakeOpenAIDoors(),
        "gemini.test": gemini or FakeGeminiEmbed(),
    }
    return Gateway.from_config(doc, environ={}, transport=httpx.MockTransport(route_hosts(hosts)), **kw)


async def embed(app: Gateway, body: Any) -> Any:
    return await drive(app, path="/v1/embeddings", json=body, headers=AUTH)


def floats(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# -- OpenAI and Azure: passthrough ---------------------------------------------------------


async def test_an_openai_route_gets_the_clients_bytes_and_the_client_gets_the_upstreams() -> None:
    openai = FakeOpenAIDoors()
    route = {"provider": "oai", "model": "embed", "capabilities": {"embeddings": True}}
    raw = b'{"model": "embed",  "input": ["a 1", "b 2"], "dimensions": 3, "user": "u-1"}'
    headers = [*AUTH, ("content-type", "application/json")]
    driver = await drive(build(document([route]), openai=openai), path="/v1/embeddings", body=raw, headers=headers)

    assert driver.status == 200, driver.body
    assert openai.requests[0].url == "https://openai.test/v1/embeddings"
    assert openai.requests[0].raw == raw
    answer = driver.json()
    assert [item["embedding"][1] for item in answer["data"]] == [1.0, 2.0]
    assert len(answer["data"][0]["embedding"]) == 3
    assert driver.header("x-routemw-provider") == "oai"


async def test_the_public_model_name_goes_upstream_as_the_routes_name_and_comes_back_public() -> None:
    openai = FakeOpenAIDoors()
    driver = await embed(build(document([OPENAI_ROUTE]), openai=openai), {"model": "embed", "input": "hello"})

    assert driver.status == 200, driver.body
    assert openai.requests[0].body["model"] == "text-embedding-3-small"
    assert driver.json()["model"] == "embed"  # response_model: public (the default)


async def test_an_azure_route_puts_the_deployment_in_the_path() -> None:
    openai = FakeOpenAIDoors()
    route = {"provider": "az", "model": "text-embedding-3-large"}
    driver = await embed(build(document([route]), openai=openai), {"model": "embed", "input": [1, 2, 3]})

    assert driver.status == 200, driver.body
    url = httpx.URL(openai.requests[0].url)
    assert url.path == "/openai/deployments/text-embedding-3-large/embeddings"
    assert url.params["api-version"] == "2024-10-21"
    assert openai.requests[0].headers["api-key"] == "az-key-123456789"


# -- Gemini: translated both ways ----------------------------------------------------------


async def test_a_gemini_route_gets_batch_embed_contents_and_answers_in_openais_shape() -> None:
    gemini = FakeGeminiEmbed()
    body = {"model": "embed", "input": ["doc 7", "doc 9"], "dimensions": 2, "user": "u-1"}
    driver = await embed(build(document([GEMINI_ROUTE]), gemini=gemini), body)

    assert driver.status == 200, driver.body
    assert gemini.requests[0].url == "https://gemini.test/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert gemini.requests[0].body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "doc 7"}]},
                "outputDimensionality": 2,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "doc 9"}]},
                "outputDimensionality": 2,
            },
        ]
    }
    answer = driver.json()
    assert answer["object"] == "list" and answer["model"] == "embed"
    assert answer["data"] == [
        {"object": "embedding", "index": 0, "embedding": [0.0, 7.0]},
        {"object": "embedding", "index": 1, "embedding": [1.0, 9.0]},
    ]
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}  # estimated: 2 per 5-byte text
    assert driver.header("x-routemw-usage") == "estimated"


async def test_base64_is_made_by_the_gateway_from_geminis_floats() -> None:
    body = {"model": "embed", "input": "doc 3", "encoding_format": "base64"}
    driver = await embed(build(document([GEMINI_ROUTE])), body)

    assert driver.status == 200, driver.body
    encoded = driver.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    assert floats(encoded) == [0.0, 3.0, 0.5, -0.25]


async def test_token_inputs_skip_a_gemini_route_for_an_openai_one() -> None:
    openai = FakeOpenAIDoors()
    app = build(document([GEMINI_ROUTE, OPENAI_ROUTE]), openai=openai)
    driver = await embed(app, {"model": "embed", "input": [[1, 2], [3]]})

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "oai"
    assert len(openai.requests) == 1


async def test_token_inputs_with_only_a_gemini_route_are_a_400_naming_input() -> None:
    driver = await embed(build(document([GEMINI_ROUTE])), {"model": "embed", "input": [1, 2, 3]})

    assert driver.status == 400
    assert driver.json()["error"]["param"] == "input"


# -- batching ------------------------------------------------------------------------------


async def test_inputs_over_geminis_limit_are_split_and_joined_in_order() -> None:
    gemini = FakeGeminiEmbed()
    texts = [f"doc {i}" for i in range(250)]
    driver = await embed(build(document([GEMINI_ROUTE]), gemini=gemini), {"model": "embed", "input": texts})

    assert driver.status == 200, driver.body
    assert [len(r.body["requests"]) for r in gemini.requests] == [100, 100, 50]
    data = driver.json()["data"]
    assert [item["index"] for item in data] == list(range(250))
    assert [item["embedding"][1] for item in data] == [float(i) for i in range(250)]
    assert driver.json()["usage"]["prompt_tokens"] == sum(max(1, -(-len(t) // 4)) for t in texts)


async def test_a_failing_batch_fails_the_whole_request_with_no_partial_vectors() -> None:
    gemini = FakeGeminiEmbed(fail_call=2)
    texts = [f"doc {i}" for i in range(150)]
    driver = await embed(build(document([GEMINI_ROUTE]), gemini=gemini), {"model": "embed", "input": texts})

    assert driver.status == 502
    assert "data" not in driver.json()
    assert driver.json()["error"]["code"] == "upstream_error"


async def test_a_failing_batch_falls_back_to_the_next_route_whole() -> None:
    gemini = FakeGeminiEmbed(fail_call=2)
    openai = FakeOpenAIDoors()
    texts = [f"doc {i}" for i in range(150)]
    app = build(document([GEMINI_ROUTE, OPENAI_ROUTE]), openai=openai, gemini=gemini)
    driver = await embed(app, {"model": "embed", "input": texts})

    assert driver.status == 200, driver.body
    assert driver.header("x-routemw-provider") == "oai"
    assert len(openai.requests[0].body["input"]) == 150  # one call: OpenAI takes 2,048
    assert [item["embedding"][1] for item in driver.json()["data"]] == [float(i) for i in range(150)]


# -- validation and kinds of model ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": 3, "input": "x"}, "model"),
        ({"model": "embed"}, "input"),
        ({"model": "embed", "input": ""}, "input"),
        ({"model": "embed", "input": []}, "input"),
        ({"model": "embed", "input": {"text": "x"}}, "input"),
        ({"model": "embed", "input": ["a", 2]}, "input[1]"),
        ({"model": "embed", "input": ["a", ""]}, "input[1]"),
        ({"model": "embed", "input": [1, "a"]}, "input[1]"),
        ({"model": "embed", "input": [[1], []]}, "input[1]"),
        ({"model": "embed", "input": [[1], [2.5]]}, "input[1]"),
        ({"model": "embed", "input": [True]}, "input[0]"),
        ({"model": "embed", "input": ["a"] * 2049}, "input"),
        ({"model": "embed", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "embed", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "embed", "input": "x", "dimensions": "8"}, "dimensions"),
        ({"model": "embed", "input": "x", "user": 7}, "user"),
    ],
)
async def test_a_bad_field_is_a_400_naming_it(body: dict[str, Any], param: str) -> None:
    openai = FakeOpenAIDoors()
    driver = await embed(build(document([OPENAI_ROUTE]), openai=openai), body)

    assert driver.status == 400
    error = driver.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert openai.requests == []


async def test_a_chat_model_on_the_embeddings_door_is_a_400_naming_model() -> None:
    driver = await embed(build(document([OPENAI_ROUTE])), {"model": "chat", "input": "x"})

    assert driver.status == 400
    error = driver.json()["error"]
    assert error["param"] == "model" and "not an embeddings model" in error["message"]


async def test_an_embeddings_model_on_the_chat_door_is_a_400_naming_model() -> None:
    body = {"model": "embed", "messages": [{"role": "user", "content": "hi"}]}
    driver = await drive(build(document([OPENAI_ROUTE])), json=body, headers=AUTH)

    assert driver.status == 400
    error = driver.json()["error"]
    assert error["param"] == "model" and "serves embeddings" in error["message"]


async def test_config_marks_an_unknown_model_as_embeddings() -> None:
    route = {"provider": "oai", "model": "bge-large", "capabilities": {"embeddings": True}}
    plain = await embed(build(document([{"provider": "oai", "model": "bge-large"}])), {"model": "embed", "input": "x"})
    marked = await embed(build(document([route])), {"model": "embed", "input": "x"})

    assert plain.status == 400 and plain.json()["error"]["param"] == "model"
    assert marked.status == 200, marked.body


async def test_an_upstream_refusal_goes_to_the_client_as_the_upstream_gave_it() -> None:
    openai = FakeOpenAIDoors(
        steps=[answer_error(400, message="This model's maximum context length is 8192", param="input")]
    )
    driver = await embed(build(document([OPENAI_ROUTE]), openai=openai), {"model": "embed", "input": "x"})

    assert driver.status == 400
    assert driver.json()["error"]["param"] == "input"


async def test_an_invalid_upstream_answer_is_not_relayed_as_a_success() -> None:
    openai = FakeOpenAIDoors(steps=[answer_json({"object": "list", "data": [{"index": 0}]})])
    driver = await embed(build(document([OPENAI_ROUTE]), openai=openai), {"model": "embed", "input": "x"})

    assert driver.status == 502


# -- limits and usage ----------------------------------------------------------------------


async def test_usage_is_recorded_with_input_tokens_only_and_priced() -> None:
    records: list[UsageRecord] = []
    driver = await embed(
        build(document([OPENAI_ROUTE]), on_usage=records.append), {"model": "embed", "input": ["abcdefgh", "abcd"]}
    )

    assert driver.status == 200, driver.body
    (record,) = records
    assert (record.prompt_tokens, record.completion_tokens) == (3, 0)
    assert record.cost_usd == pytest.approx(3 * 0.02 / 1_000_000, abs=1e-6)
    assert record.provider == "oai" and record.stream is False


async def test_tpm_counts_embeddings_input_and_refuses_past_it() -> None:
    store = MemoryLimitStore(clock=lambda: 1_800_000_000.0)
    app = build(document([OPENAI_ROUTE], limits={"tpm": 60}), limits=store)
    body = {"model": "embed", "input": "x" * 100}  # about 30 tokens estimated before, 25 reported

    first = await embed(app, body)
    second = await embed(app, body)
    third = await embed(app, body)

    assert first.status == 200 and second.status == 200
    assert third.status == 429
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
