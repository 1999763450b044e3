"""FakeGemini refuses what the real API refuses, and answers in the recorded wire format.

A fake that accepts anything proves nothing, so each rule the fake enforces has a request here
that breaks it, next to the nearest request that passes. Its answers are compared with the
genuine recordings (CRLF framing, Gemini's JSON spacing, whole function calls, usage and
finish on the last event), and its scripted errors are read back by the real adapter.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from conformance.fake_gemini import FakeGemini, PieceStream
from conformance.model import Answer, CanonicalMessage, CanonicalToolCall, ErrorAnswer, ToolCall
from fakes import recording

from routemw import Action, ProviderConfig, Target
from routemw.chat import parse_chat_request
from routemw.http.sse import SSEDecoder
from routemw.providers.gemini import GeminiProvider
from routemw.providers.gemini.request import SKIP_SIGNATURE

KEY = "fake-gemini-key"
URL = "https://gemini.test/v1beta/models/gemini-2.5-flash:generateContent"
STREAM_URL = "https://gemini.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
DECLARATION: dict[str, Any] = {
    "name": "get_weather",
    "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def post(fake: FakeGemini, body: Any, url: str = URL, *, key: str | None = KEY, method: str = "POST") -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["x-goog-api-key"] = key
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = fake(httpx.Request(method, url, headers=headers, content=content))
    response.read()
    return response


def with_(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    body.update(changes)
    return body


def refused(response: httpx.Response, status: int = 400) -> str:
    """The message of a Gemini-shaped refusal, after checking its shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["status"] == {400: "INVALID_ARGUMENT", 404: "NOT_FOUND"}[status]
    message: str = error["message"]
    return message


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini(KEY)


# -- transport: key, path, streaming mode -----------------------------------------------------


def test_a_valid_request_gets_the_default_answer(fake: FakeGemini) -> None:
    response = post(fake, BODY)
    assert response.status_code == 200
    assert response.json()["candidates"][0]["content"]["parts"] == [{"text": "ok"}]
    assert fake.requests == [BODY]


@pytest.mark.parametrize("key", [None, "wrong-key"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_key_is_api_key_invalid(fake: FakeGemini, key: str | None) -> None:
    response = post(fake, BODY, key=key)
    assert refused(response) == "API key not valid. Please pass a valid API key."
    assert response.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "https://gemini.test/v1/models/gemini-2.5-flash:generateContent"),
        ("POST", "https://gemini.test/v1beta/models/gemini-2.5-flash:countTokens"),
        ("POST", "https://gemini.test/v1beta/chat/completions"),
        ("GET", URL),
    ],
)
def test_other_paths_and_methods_are_not_found(fake: FakeGemini, method: str, url: str) -> None:
    refused(post(fake, BODY, url, method=method), 404)


def test_a_stream_without_alt_sse_is_refused(fake: FakeGemini) -> None:
    message = refused(post(fake, BODY, STREAM_URL.removesuffix("?alt=sse")))
    assert "alt=sse" in message


def test_an_unknown_model_is_not_found_as_recorded(fake: FakeGemini) -> None:
    message = refused(post(fake, BODY, URL.replace("gemini-2.5-flash", "gpt-4o")), 404)
    recorded = orjson.loads(recording("gemini/error-404-model-not-found.json"))["error"]["message"]
    assert message.split(" is not found ")[1] == recorded.split(" is not found ")[1]


def test_a_body_that_is_not_json_is_refused(fake: FakeGemini) -> None:
    assert "Invalid JSON payload" in refused(post(fake, b"{not json"))


# -- the official schema: unknown names and wrong types ----------------------------------------

UNKNOWN_NAMES = {
    "top level": (with_(temperature=0.5), "temperature", ""),
    "generationConfig": (with_(generationConfig={"max_tokens": 5}), "max_tokens", "generation_config"),
    "content": (with_(contents=[{"role": "user", "parts": [{"text": "hi"}], "name": "x"}]), "name", "contents[0]"),
    "part": (
        with_(contents=[{"role": "user", "parts": [{"text": "hi", "type": "text"}]}]),
        "type",
        "contents[0].parts[0]",
    ),
    "tool": (with_(tools=[{"functionDeclarations": [DECLARATION], "type": "function"}]), "type", "tools[0]"),
    "functionDeclaration": (
        with_(tools=[{"functionDeclarations": [{**DECLARATION, "strict": True}]}]),
        "strict",
        "tools[0].function_declarations[0]",
    ),
    "toolConfig": (
        with_(tools=[{"functionDeclarations": [DECLARATION]}], toolConfig={"mode": "AUTO"}),
        "mode",
        "tool_config",
    ),
    "functionCallingConfig": (
        with_(
            tools=[{"functionDeclarations": [DECLARATION]}],
            toolConfig={"functionCallingConfig": {"mode": "ANY", "allowed": ["get_weather"]}},
        ),
        "allowed",
        "tool_config.function_calling_config",
    ),
    "snake case": (with_(generation_config={"temperature": 0}), "generation_config", ""),
}


@pytest.mark.parametrize(("body", "name", "path"), UNKNOWN_NAMES.values(), ids=UNKNOWN_NAMES.keys())
def test_unknown_names_are_refused_where_they_stand(fake: FakeGemini, body: Any, name: str, path: str) -> None:
    where = f" at '{path}'" if path else ""
    assert (
        refused(post(fake, body)) == f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"temperature": "hot"}, "Invalid value at 'generation_config.temperature' (TYPE_FLOAT)"),
        ({"maxOutputTokens": 1.5}, "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32)"),
        ({"stopSequences": "END"}, "Invalid value at 'generation_config.stop_sequences'"),
    ],
)
def test_values_of_the_wrong_type_are_refused(fake: FakeGemini, config: dict[str, Any], expected: str) -> None:
    assert refused(post(fake, with_(generationConfig=config))).startswith(expected)


SCHEMA_KEYWORDS = ["additionalProperties", "$schema", "const", "propertyNames", "strict"]


@pytest.mark.parametrize("keyword", SCHEMA_KEYWORDS)
def test_json_schema_keywords_are_refused_in_parameters_but_not_in_parameters_json_schema(
    fake: FakeGemini, keyword: str
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, keyword: False}
    as_parameters = with_(tools=[{"functionDeclarations": [{"name": "f", "parameters": schema}]}])
    assert f'Unknown name "{keyword}"' in refused(post(fake, as_parameters))
    as_json_schema = with_(tools=[{"functionDeclarations": [{"name": "f", "parametersJsonSchema": schema}]}])
    assert post(fake, as_json_schema).status_code == 200


def test_nested_schema_keywords_are_found_too(fake: FakeGemini) -> None:
    schema = {"type": "OBJECT", "properties": {"tags": {"type": "ARRAY", "items": {"type": "STRING", "const": "x"}}}}
    message = refused(post(fake, with_(tools=[{"functionDeclarations": [{"name": "f", "parameters": schema}]}])))
    assert message.startswith('Invalid JSON payload received. Unknown name "const" at')
    assert "parameters.properties" in message


def test_both_parameter_fields_at_once_are_refused(fake: FakeGemini) -> None:
    declaration = {**DECLARATION, "parameters": {"type": "OBJECT"}}
    assert "mutually exclusive" in refused(post(fake, with_(tools=[{"functionDeclarations": [declaration]}])))


# -- turns and parts --------------------------------------------------------------------------

CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
ANSWER = {"functionResponse": {"name": "get_weather", "response": {"temp": "18C"}}}
TURNS = {
    "role assistant": ([{"role": "assistant", "parts": [{"text": "x"}]}], "Please use a valid role: user, model."),
    "role system": ([{"role": "system", "parts": [{"text": "x"}]}], "Please use a valid role: user, model."),
    "not alternating": (
        [{"role": "user", "parts": [{"text": "a"}]}, {"role": "user", "parts": [{"text": "b"}]}],
        "Please ensure that multiturn requests alternate between user and model.",
    ),
    "no contents": ([], "contents is not specified"),
    "no parts": ([{"role": "user", "parts": []}], "contents.parts must not be empty"),
    "empty text": ([{"role": "user", "parts": [{"text": ""}]}], "empty text parameter"),
    "no data": ([{"role": "user", "parts": [{"thought": True}]}], "required oneof field 'data'"),
    "two data fields": (
        [{"role": "user", "parts": [{"text": "a", "inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}],
        "Oneof field 'data' is already set",
    ),
    "response without name": (
        [
            {"role": "user", "parts": [{"text": "w"}]},
            {"role": "model", "parts": [CALL]},
            {"role": "user", "parts": [{"functionResponse": {"response": {"temp": "18C"}}}]},
        ],
        "function_response.name: Name cannot be empty.",
    ),
    "call without name": (
        [{"role": "user", "parts": [{"text": "w"}]}, {"role": "model", "parts": [{"functionCall": {"args": {}}}]}],
        "function_call.name: Name cannot be empty.",
    ),
    "fewer responses than calls": (
        [
            {"role": "user", "parts": [{"text": "w"}]},
            {"role": "model", "parts": [CALL, CALL]},
            {"role": "user", "parts": [ANSWER]},
        ],
        "number of function response parts is equal to the number of function call parts",
    ),
    "response without a call": (
        [
            {"role": "user", "parts": [{"text": "w"}]},
            {"role": "model", "parts": [{"text": "x"}]},
            {"role": "user", "parts": [ANSWER]},
        ],
        "function response turn comes immediately after a function call turn",
    ),
    "bad signature": (
        [
            {"role": "user", "parts": [{"text": "w"}]},
            {"role": "model", "parts": [{**CALL, "thoughtSignature": "not base64!"}]},
        ],
        "Base64 decoding failed",
    ),
    "bad inline data": (
        [{"role": "user", "parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}],
        "inline_data",
    ),
}


@pytest.mark.parametrize(("contents", "expected"), TURNS.values(), ids=TURNS.keys())
def test_turn_and_part_rules(fake: FakeGemini, contents: list[dict[str, Any]], expected: str) -> None:
    assert expected in refused(post(fake, {"contents": contents}))


def test_a_call_and_its_answer_pass(fake: FakeGemini) -> None:
    contents = [
        {"role": "user", "parts": [{"text": "w"}]},
        {"role": "model", "parts": [CALL]},
        {"role": "user", "parts": [ANSWER]},
    ]
    assert post(fake, {"contents": contents, "tools": [{"functionDeclarations": [DECLARATION]}]}).status_code == 200


def test_gemini_3_wants_a_signature_on_the_first_call_of_the_current_turn(fake: FakeGemini) -> None:
    url = URL.replace("gemini-2.5-flash", "gemini-3-pro-preview")
    contents = [
        {"role": "user", "parts": [{"text": "w"}]},
        {"role": "model", "parts": [CALL, CALL]},
        {"role": "user", "parts": [ANSWER, ANSWER]},
    ]
    assert "missing a thought_signature" in refused(post(fake, {"contents": contents}, url))
    contents[1]["parts"][0] = {**CALL, "thoughtSignature": SKIP_SIGNATURE}
    assert post(fake, {"contents": contents}, url).status_code == 200
    # An earlier turn (before the latest user text) is not checked, as with the real API.
    older = [
        *copy.deepcopy(contents),
        {"role": "model", "parts": [{"text": "18C"}]},
        {"role": "user", "parts": [{"text": "more"}]},
    ]
    older[1]["parts"][0] = CALL
    assert post(fake, {"contents": older}, url).status_code == 200


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"stopSequences": ["1", "2", "3", "4", "5", "6"]}, "from 1 (inclusive) to 6 (exclusive)"),
        ({"temperature": 2.5}, "temperature must be in the range"),
        ({"topP": 1.5}, "top_p must be in the range"),
        ({"candidateCount": 9}, "candidate_count must be in the range"),
        ({"maxOutputTokens": 0}, "max_output_tokens"),
        ({"responseJsonSchema": {"type": "object"}}, "response_mime_type"),
    ],
)
def test_generation_config_rules(fake: FakeGemini, config: dict[str, Any], expected: str) -> None:
    assert expected in refused(post(fake, with_(generationConfig=config)))


def test_five_stop_sequences_and_zero_values_pass(fake: FakeGemini) -> None:
    config = {"stopSequences": ["1", "2", "3", "4", "5"], "temperature": 0, "topP": 0, "seed": 0}
    assert post(fake, with_(generationConfig=config)).status_code == 200


@pytest.mark.parametrize(
    ("tools", "tool_config", "expected"),
    [
        ([], {"functionCallingConfig": {"mode": "ANY"}}, "without function_declarations"),
        ([DECLARATION], {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["get_weather"]}}, "ANY"),
        ([DECLARATION], {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["nope"]}}, "not declared"),
        ([DECLARATION], {"functionCallingConfig": {"mode": "SOMETIMES"}}, "Invalid value"),
        ([{"name": "1bad"}], None, "Invalid function name"),
    ],
)
def test_tool_rules(fake: FakeGemini, tools: list[Any], tool_config: Any, expected: str) -> None:
    body = with_(tools=[{"functionDeclarations": tools}] if tools else [])
    if tool_config is not None:
        body["toolConfig"] = tool_config
    assert expected in refused(post(fake, body))


def test_refusals_are_recorded(fake: FakeGemini) -> None:
    post(fake, with_(generationConfig={"stopSequences": ["1", "2", "3", "4", "5", "6"]}))
    assert len(fake.requests) == 1 and "6 (exclusive)" in fake.refusals[0]


# -- answers in the recorded wire format -------------------------------------------------------


def events_of(response: httpx.Response) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    raw = [event.data for piece in response.stream for event in decoder.feed(piece)]  # type: ignore[union-attr]
    raw += [event.data for event in decoder.close()]
    return [orjson.loads(data) for data in raw]


def test_a_text_stream_is_framed_like_the_recording(fake: FakeGemini) -> None:
    fake.script(Answer(text="The capital of France is Paris.", fragment=10, prompt_tokens=13, completion_tokens=8))
    response = post(fake, BODY, STREAM_URL)
    assert response.headers["content-type"] == "text/event-stream"
    body = response.content
    assert body.startswith(b'data: {"candidates": [{"content": {"parts": [{"text": "The capita"}],"role": "model"}')
    assert body.endswith(b"}\r\n\r\n") and b"\n\n" not in body.replace(b"\r\n\r\n", b"")
    assert isinstance(response.stream, PieceStream)
    assert any(piece.endswith(b"\r") for piece in response.stream.pieces)  # cuts between CR and LF
    events = events_of(response)
    recorded = [orjson.loads(line[6:]) for line in recording("gemini/stream-text.sse").split(b"\r\n\r\n") if line]
    assert [set(e) for e in events] == [set(recorded[0])] * len(events)
    assert [e["candidates"][0]["content"]["parts"][0]["text"] for e in events] == [
        "The capita",
        "l of Franc",
        "e is Paris",
        ".",
    ]
    assert [e["candidates"][0].get("finishReason") for e in events] == [None, None, None, "STOP"]
    assert all("candidatesTokenCount" not in e["usageMetadata"] for e in events[:-1])
    assert events[-1]["usageMetadata"] | {"promptTokensDetails": None} == {
        "promptTokenCount": 13,
        "candidatesTokenCount": 8,
        "totalTokenCount": 21,
        "promptTokensDetails": None,
    }


def test_function_calls_stream_whole_with_a_trailing_finish(fake: FakeGemini) -> None:
    calls = (ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_time", {}))
    fake.script(Answer(tool_calls=calls, finish="tool_calls", fragment=2))
    events = events_of(
        post(fake, with_(tools=[{"functionDeclarations": [DECLARATION, {"name": "get_time"}]}]), STREAM_URL)
    )
    parts = [e["candidates"][0]["content"]["parts"] for e in events]
    assert [p[0].get("functionCall") for p in parts[:2]] == [
        {"name": "get_weather", "args": {"city": "Paris"}},
        {"name": "get_time", "args": {}},
    ]
    assert "thoughtSignature" in parts[0][0] and "thoughtSignature" not in parts[1][0]
    assert parts[2] == [{"text": ""}] and events[2]["candidates"][0]["finishReason"] == "STOP"


def test_a_json_answer_is_shaped_like_the_recording(fake: FakeGemini) -> None:
    fake.script(Answer(tool_calls=(ToolCall("generate_topic", {}),) * 3, finish="tool_calls"))
    answer = post(fake, with_(tools=[{"functionDeclarations": [{"name": "generate_topic"}]}])).json()
    recorded = orjson.loads(recording("gemini/generate-content-parallel-function-calls.json"))
    assert set(answer) == set(recorded)
    assert set(answer["candidates"][0]) == set(recorded["candidates"][0])
    assert [set(p) for p in answer["candidates"][0]["content"]["parts"]] == [
        set(p) for p in recorded["candidates"][0]["content"]["parts"]
    ]
    assert answer["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("kind", "status", "rpc", "action", "retry_after"),
    [
        ("invalid_request", 400, "INVALID_ARGUMENT", Action.STOP, None),
        ("auth", 400, "INVALID_ARGUMENT", Action.FALLBACK, None),
        ("not_found", 404, "NOT_FOUND", Action.FALLBACK, None),
        ("rate_limit", 429, "RESOURCE_EXHAUSTED", Action.RETRY, 1.0),
        ("quota", 429, "RESOURCE_EXHAUSTED", Action.FALLBACK, None),
        ("overloaded", 503, "UNAVAILABLE", Action.RETRY, None),
        ("server", 500, "INTERNAL", Action.RETRY, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_scripted_errors_read_back_through_the_adapter(
    fake: FakeGemini, kind: Any, status: int, rpc: str, action: Action, retry_after: float | None, stream: bool
) -> None:
    fake.script(Answer(error=ErrorAnswer(kind, f"scripted {kind}")))
    response = post(fake, BODY, STREAM_URL if stream else URL)
    assert response.status_code == status and response.json()["error"]["status"] == rpc
    assert response.headers["content-type"].startswith("text/event-stream" if stream else "application/json")
    provider = GeminiProvider(
        ProviderConfig(name="gem", type="gemini", **{k: v for k, v in fake.provider_config.items() if k != "type"})
    )
    error = provider.error_from_response(response, response.content)
    assert (error.action, error.retry_after, error.code) == (action, retry_after, rpc.lower())


# -- canonical --------------------------------------------------------------------------------


def test_canonical_reads_the_adapters_request_back(fake: FakeGemini) -> None:
    provider = GeminiProvider(ProviderConfig(name="gem", type="gemini", base_url="https://gemini.test", api_key=KEY))
    weather = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": DECLARATION["parametersJsonSchema"]},
    }
    body = {
        "model": "m",
        "stream": True,
        "messages": [
            {"role": "system", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c2", "content": "22C"},
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp": "18C"}'},
        ],
        "tools": [weather],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "temperature": 0,
        "top_p": 0.5,
        "max_tokens": 50,
        "stop": "END",
        "seed": 0,
        "response_format": {"type": "json_object"},
    }
    target = Target(provider=provider, model="gemini-2.5-flash", public_model="m", profile=provider.profile("x"))
    response = fake(provider.build_request(parse_chat_request(orjson.dumps(body)), target))
    assert response.status_code == 200, response.read()
    asked = fake.canonical()
    assert (asked.model, asked.stream, asked.system) == ("gemini-2.5-flash", True, "Be terse.")
    assert (asked.temperature, asked.top_p, asked.max_tokens, asked.stop, asked.seed) == (0, 0.5, 50, ("END",), 0)
    assert (asked.tools, asked.tool_choice, asked.response_format) == (
        ("get_weather",),
        ("function", "get_weather"),
        "json_object",
    )
    calls = (
        CanonicalToolCall("gemini:1:1", "get_weather", {"city": "Paris"}),
        CanonicalToolCall("gemini:1:2", "get_weather", {"city": "Rome"}),
    )
    # Gemini pairs by name and order, so the adapter sent the answers in call order.
    assert asked.messages == (
        CanonicalMessage("user", text="Look", images=1),
        CanonicalMessage("assistant", text="Checking.", tool_calls=calls),
        CanonicalMessage("tool", tool_call_id="gemini:1:1", tool_result='{"temp":"18C"}'),
        CanonicalMessage("tool", tool_call_id="gemini:1:2", tool_result='{"content":"22C"}'),
    )


@pytest.mark.parametrize(
    ("tool_config", "choice"),
    [
        (None, None),
        ({"functionCallingConfig": {"mode": "AUTO"}}, "auto"),
        ({"functionCallingConfig": {"mode": "NONE"}}, "none"),
        ({"functionCallingConfig": {"mode": "ANY"}}, "required"),
    ],
)
def test_canonical_tool_choice(fake: FakeGemini, tool_config: Any, choice: Any) -> None:
    body = with_(tools=[{"functionDeclarations": [DECLARATION]}])
    if tool_config is not None:
        body["toolConfig"] = tool_config
    assert post(fake, body).status_code == 200
    assert fake.canonical().tool_choice == choice
