"""The Azure OpenAI adapter: URLs, credentials, api-version dependent profile, stream clean-up."""

from __future__ import annotations

import httpx
import orjson
import pytest
from fakes import RECORDINGS as ALL_RECORDINGS

from routemw import Gateway
from routemw.chat import parse_chat_request
from routemw.config import ProviderConfig
from routemw.errors import Action, ConfigError
from routemw.providers.base import Target, parse_stream
from routemw.providers.openai.azure import AzureProvider

RECORDINGS = ALL_RECORDINGS / "azure"


def _provider(**options: object) -> AzureProvider:
    config = ProviderConfig(
        name="az", type="azure", base_url="https://res.openai.azure.com", api_key="az-secret-key", options=options
    )
    return AzureProvider(config)


def _request(**fields: object) -> httpx.Request:
    provider = _provider()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}
    target = Target(
        provider=provider, model="prod-gpt4o", public_model="gpt-4o", profile=provider.profile("prod-gpt4o")
    )
    return provider.build_request(parse_chat_request(orjson.dumps(body)), target)


def test_deployment_url_api_version_and_api_key_header() -> None:
    request = _request()
    assert str(request.url) == (
        "https://res.openai.azure.com/openai/deployments/prod-gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == "az-secret-key"
    assert "authorization" not in request.headers


def test_v1_url_carries_the_deployment_as_model() -> None:
    provider = _provider(api_version="v1")
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    target = Target(provider=provider, model="prod-gpt4o", public_model="gpt-4o")
    request = provider.build_request(parse_chat_request(orjson.dumps(body)), target)
    assert str(request.url) == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert orjson.loads(request.content)["model"] == "prod-gpt4o"


def test_base_url_is_required() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        AzureProvider(ProviderConfig(name="az", type="azure"))


def test_old_api_versions_do_not_get_stream_options() -> None:
    old = _provider(api_version="2024-02-01").profile("gpt-4o")
    assert old.stream_options is False and old.supports("stream_usage") is False
    current = _provider().profile("gpt-4o")
    assert current.stream_options is True and current.supports("stream_usage") is True
    assert _provider().profile("my-custom-deployment").supports("tools") is None


async def test_recorded_stream_drops_preamble_and_annotation_chunks() -> None:
    provider = _provider()
    raw = (RECORDINGS / "stream-async-filter.sse").read_bytes()
    response = httpx.Response(200, content=raw, headers={"content-type": "text/event-stream"})
    request = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}')
    target = Target(provider=provider, model="d", public_model="m")
    chunks = [c.data async for c in parse_stream(provider, response, request, target)]
    assert chunks, "the recording has content"
    assert all(c["id"] for c in chunks), "no preamble or annotation-only chunk is forwarded"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Kindness"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_recorded_preamble_stream_keeps_usage_and_content() -> None:
    provider = _provider()
    lines = (RECORDINGS / "stream-prompt-filter-preamble.chunks.jsonl").read_bytes().splitlines()
    raw = b"".join(b"data: " + line + b"\n\n" for line in lines if line.strip()) + b"data: [DONE]\n\n"
    response = httpx.Response(200, content=raw, headers={"content-type": "text/event-stream"})
    request = parse_chat_request(b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}')
    chunks = [
        c.data
        async for c in parse_stream(provider, response, request, Target(provider=provider, model="d", public_model="m"))
    ]
    assert not any(c.get("prompt_filter_results") is not None and not c["choices"] for c in chunks)
    assert chunks[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 64


def test_errors_deployment_not_found_falls_back_and_content_filter_stops() -> None:
    provider = _provider()
    body = (RECORDINGS / "error-404-deployment-not-found.json").read_bytes()
    missing = provider.error_from_response(httpx.Response(404), body)
    assert missing.action is Action.FALLBACK and missing.code == "DeploymentNotFound"
    blocked = {
        "error": {
            "message": "The response was filtered due to the prompt triggering the content management policy.",
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        }
    }
    error = provider.error_from_response(httpx.Response(400), orjson.dumps(blocked))
    assert error.action is Action.STOP
    assert (error.status_code, error.code, error.param) == (400, "content_filter", "prompt")


async def test_gateway_with_azure_route_end_to_end() -> None:
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = (RECORDINGS / "completion-content-filter-results.json").read_bytes()
        return httpx.Response(200, content=body, headers={"content-type": "application/json", "apim-request-id": "x"})

    config = {
        "providers": {"az": {"type": "azure", "base_url": "https://res.openai.azure.com", "api_key": "az-secret-key"}},
        "models": {"gpt-4o": {"routes": [{"provider": "az", "model": "prod"}]}},
    }
    gateway = Gateway.from_config(config, transport=httpx.MockTransport(upstream))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer client-key"},
        )
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert seen[0].headers["api-key"] == "az-secret-key"
    assert "client-key" not in str(seen[0].headers)


# -- deployment names -------------------------------------------------------------------------------


def _url(provider: AzureProvider, deployment: str) -> httpx.URL:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    target = Target(provider=provider, model=deployment, public_model="gpt-4o")
    return provider.build_request(parse_chat_request(orjson.dumps(body)), target).url


@pytest.mark.parametrize(
    ("deployment", "segment"),
    [
        ("my/../../admin", "my%2F..%2F..%2Fadmin"),
        ("..", "%2E%2E"),
        ("a b?c#d", "a%20b%3Fc%23d"),
        ("gpt-4.1", "gpt-4.1"),
    ],
)
def test_a_deployment_is_one_escaped_path_segment_even_in_a_hand_built_target(deployment: str, segment: str) -> None:
    url = _url(_provider(), deployment)
    assert url.raw_path.decode() == f"/openai/deployments/{segment}/chat/completions?api-version=2024-10-21"
    assert url.host == "res.openai.azure.com"


def _config(*deployments: str, api_version: str | None = None) -> dict[str, object]:
    provider: dict[str, object] = {"type": "azure", "base_url": "https://res.openai.azure.com", "api_key": "k"}
    if api_version:
        provider["api_version"] = api_version
    routes = [{"provider": "az", "model": d} for d in deployments]
    return {"providers": {"az": provider}, "models": {"gpt-4.1": {"routes": routes}}}


@pytest.mark.parametrize("api_version", [None, "v1"])
def test_deployment_names_azure_would_refuse_are_refused_at_startup_by_route(api_version: str | None) -> None:
    bad = ["my/../../admin", "x", "-lead", "a" * 65, "a b", "..", "ünï"]
    with pytest.raises(ConfigError) as info:
        Gateway.from_config(_config("prod", *bad, api_version=api_version), environ={})
    problems = info.value.problems
    assert len(problems) == len(bad), "every bad route is listed, the good one is not"
    for i, (name, problem) in enumerate(zip(bad, problems, strict=True), start=1):
        assert problem.startswith(f"models.gpt-4.1.routes[{i}].model: {name!r} is not an Azure deployment name")
    assert "az-secret-key" not in str(info.value)


def test_deployment_names_azure_accepts_build_a_gateway() -> None:
    good = ["gpt-4.1", "prod_gpt-4o", "GPT4", "o3", "4o.mini-2024_08", "a" * 64]
    gateway = Gateway.from_config(_config(*good), environ={})
    entry = gateway.catalog.get("gpt-4.1")
    assert entry is not None and [t.model for t in entry.targets] == good


def test_other_providers_keep_model_names_azure_would_refuse() -> None:
    config = {
        "providers": {"router": {"type": "openai", "base_url": "https://router.test/v1", "api_key": "k"}},
        "models": {"llama": {"routes": [{"provider": "router", "model": "meta-llama/llama-3.1-8b"}]}},
    }
    assert Gateway.from_config(config, environ={}).catalog.get("llama") is not None
