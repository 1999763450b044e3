"""The official `openai` SDK drives the embeddings and Responses doors of a gateway on uvicorn.

Upstreams are the strict fakes of `fake_doors` (every request validated against the official
OpenAPI schemas, Gemini's against Google's), reached through `httpx.MockTransport`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fake_doors import DIMENSIONS, FakeGeminiEmbed, FakeOpenAIDoors
from fakes import API_KEY, answer_error, route_hosts
from servers import serve

from routemw import Gateway

KEY = "sk-sdk-doors-0123456789"


class Setup:
    def __init__(self) -> None:
        self.oai = FakeOpenAIDoors(name="oai")
        self.backup = FakeOpenAIDoors(name="backup")
        self.gemini = FakeGeminiEmbed()
        openai_provider = {"type": "openai", "api_key": API_KEY, "profiles": "openai"}
        config = {
            "providers": {
                "oai": {**openai_provider, "base_url": "https://openai.test/v1"},
                "backup": {**openai_provider, "base_url": "https://backup.test/v1"},
                "gm": self.gemini.provider_config,
            },
            "models": {
                "text-embedding-3-small": {"routes": [{"provider": "oai", "model": "text-embedding-3-small"}]},
                "gemini-embedding-001": {"routes": [{"provider": "gm", "model": "gemini-embedding-001"}]},
                # The cheaper, healthy route comes first; a continuation must still go to backup.
                "gpt-4o": {
                    "routes": [{"provider": "oai", "model": "gpt-4o"}, {"provider": "backup", "model": "gpt-4o"}]
                },
            },
            "keys": [{"name": "sdk", "key": KEY, "models": ["*"]}],
            "auth": {"mode": "keys"},
            "retry": {"attempts": 1},
        }
        hosts = {"openai.test": self.oai, "backup.test": self.backup, "gemini.test": self.gemini}
        self.gateway = Gateway.from_config(config, environ={}, transport=httpx.MockTransport(route_hosts(hosts)))


@pytest.fixture(scope="module")
def setup() -> Iterator[tuple[Setup, openai.OpenAI]]:
    state = Setup()
    with serve(state.gateway) as live, openai.OpenAI(base_url=live.url + "/v1", api_key=KEY, max_retries=0) as client:
        yield state, client


def vector(embedding: Any) -> list[float]:
    """The floats of an embedding: as sent, or decoded from OpenAI's base64 (little-endian float32)."""
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


INPUTS: list[Any] = ["doc 5", ["doc 1", "doc 2", "doc 3"], [11, 12, 13], [[1, 2], [3]]]


@pytest.mark.parametrize("encoding", ["float", "base64"])
@pytest.mark.parametrize("value", INPUTS, ids=["string", "strings", "tokens", "token-arrays"])
def test_embeddings_create_with_every_input_shape_and_encoding(
    setup: tuple[Setup, openai.OpenAI], value: Any, encoding: Any
) -> None:
    _, client = setup
    answer = client.embeddings.create(model="text-embedding-3-small", input=value, encoding_format=encoding)

    count = 1 if isinstance(value, str) or isinstance(value[0], int) else len(value)
    assert [item.index for item in answer.data] == list(range(count))
    vectors = [vector(item.embedding) for item in answer.data]
    assert all(isinstance(item.embedding, str) == (encoding == "base64") for item in answer.data)
    assert all(len(v) == DIMENSIONS for v in vectors)
    assert [v[0] for v in vectors] == [float(i) for i in range(count)]
    assert answer.usage.prompt_tokens > 0


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_gemini_embeddings_through_the_sdk(setup: tuple[Setup, openai.OpenAI], encoding: Any) -> None:
    state, client = setup
    answer = client.embeddings.create(
        model="gemini-embedding-001", input=["doc 4", "doc 8"], dimensions=3, encoding_format=encoding
    )

    assert [vector(item.embedding) for item in answer.data] == [[0.0, 4.0, 0.5], [1.0, 8.0, 0.5]]
    assert state.gemini.requests[-1].body["requests"][0]["outputDimensionality"] == 3


def test_responses_create_plain(setup: tuple[Setup, openai.OpenAI]) -> None:
    _, client = setup
    response = client.responses.create(model="gpt-4o", input="Say hello.")

    assert response.output_text == "Hello there."
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 2


def test_responses_create_streamed(setup: tuple[Setup, openai.OpenAI]) -> None:
    _, client = setup
    stream = client.responses.create(model="gpt-4o", input="Say hello.", stream=True)
    kinds = [event.type for event in stream]

    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 2


def test_responses_stream_reassembles_the_final_response(setup: tuple[Setup, openai.OpenAI]) -> None:
    _, client = setup
    with client.responses.stream(model="gpt-4o", input="Say hello.") as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(texts) == "Hello there." == final.output_text
    assert final.status == "completed"


def test_a_continuation_stays_with_its_provider_while_another_is_healthy_and_cheaper(
    setup: tuple[Setup, openai.OpenAI],
) -> None:
    state, client = setup
    state.oai.queue(answer_error(500))  # the first response is made by backup
    first = client.responses.create(model="gpt-4o", input="Remember the number 7.")
    asked = len(state.oai.requests)

    second = client.responses.create(model="gpt-4o", input="Which number?", previous_response_id=first.id)
    with client.responses.stream(model="gpt-4o", input="Again?", previous_response_id=second.id) as stream:
        third = stream.get_final_response()

    assert first.id.startswith("resp_backup_") and second.id.startswith("resp_backup_")
    assert third.id.startswith("resp_backup_")
    assert len(state.oai.requests) == asked  # oai answers every other request, but was not asked


def test_an_sdk_error_for_a_bad_field_names_it(setup: tuple[Setup, openai.OpenAI]) -> None:
    _, client = setup
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="gpt-4o", input="x")

    assert raised.value.param == "model"  # type: ignore[attr-defined]
