"""parse_chat_request: the client's body is kept exactly, and every 400 names the offending field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from routemw.chat import ChatRequest, parse_chat_request
from routemw.errors import InvalidRequestError

USER = {"role": "user", "content": "hi"}


def body(**fields: Any) -> bytes:
    document: dict[str, Any] = {"model": "gpt-4o", "messages": [USER]}
    document.update(fields)
    return orjson.dumps(document)


def reject(raw: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        parse_chat_request(raw)
    return info.value


def assert_envelope(exc: InvalidRequestError, param: str | None, code: str) -> None:
    assert exc.status_code == 400
    envelope = exc.envelope()
    assert envelope == {
        "error": {"message": exc.message, "type": "invalid_request_error", "param": param, "code": code}
    }
    assert isinstance(envelope["error"]["message"], str) and envelope["error"]["message"]
    assert orjson.loads(orjson.dumps(envelope)) == envelope  # serialisable as is


# --- presence preservation --------------------------------------------------------------------


def test_falsy_values_are_kept_exactly() -> None:
    raw = body(temperature=0, parallel_tool_calls=False, user="", stop=[], seed=None, top_p=0.0, n=0)
    request = parse_chat_request(raw)
    assert request.body["temperature"] == 0 and type(request.body["temperature"]) is int
    assert request.body["parallel_tool_calls"] is False
    assert request.body["user"] == ""
    assert request.body["stop"] == []
    assert "seed" in request.body and request.body["seed"] is None
    assert request.body["top_p"] == 0.0 and type(request.body["top_p"]) is float
    assert request.body == orjson.loads(raw)


def test_absent_keys_never_appear() -> None:
    request = parse_chat_request(body())
    assert set(request.body) == {"model", "messages"}
    for key in ("temperature", "stream", "max_tokens", "tools", "n", "stop", "stream_options"):
        assert not request.has(key)
    assert request.stream is False
    assert request.include_usage is False


def test_null_is_present_and_accepted_for_every_typed_field() -> None:
    fields = {
        key: None for key in ("stream", "temperature", "n", "stop", "max_tokens", "tools", "tool_choice", "metadata")
    }
    request = parse_chat_request(body(**fields))
    for key in fields:
        assert request.has(key)
        assert request.body[key] is None


def test_unknown_top_level_keys_are_kept_untouched() -> None:
    extra = {"x_vendor": {"nested": [1, 2.5, None, True]}, "thinking": {"budget_tokens": 0}, "": "empty key"}
    request = parse_chat_request(body(**extra))
    for key, value in extra.items():
        assert request.body[key] == value


def test_messages_are_kept_exactly() -> None:
    messages = [
        {"role": "system", "content": "", "name": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "developer", "content": "d", "unknown": 0},
    ]
    request = parse_chat_request(body(messages=messages))
    assert request.messages == messages


def test_raw_bytes_are_kept() -> None:
    raw = b'{ "model" : "m",\n  "messages": [{"role":"user","content":"hi"}], "temperature": 1.0 }'
    request = parse_chat_request(raw)
    assert request.raw == raw
    assert request.body["temperature"] == 1.0


def test_properties() -> None:
    request = parse_chat_request(body(stream=True, stream_options={"include_usage": True}))
    assert isinstance(request, ChatRequest)
    assert request.model == "gpt-4o"
    assert request.messages == [USER]
    assert request.stream is True
    assert request.include_usage is True
    assert parse_chat_request(body(stream=False, stream_options={"include_usage": False})).include_usage is False


def test_integer_is_accepted_where_a_number_is_expected() -> None:
    request = parse_chat_request(body(temperature=1, top_p=1, presence_penalty=-2, frequency_penalty=2))
    assert request.body["temperature"] == 1


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "function"])
def test_every_known_role_is_accepted(role: str) -> None:
    assert parse_chat_request(body(messages=[{"role": role, "content": "x"}])).messages[0]["role"] == role


@pytest.mark.parametrize("role", ["assistant", "function"])
def test_content_may_be_absent_for_assistant_and_function(role: str) -> None:
    request = parse_chat_request(body(messages=[USER, {"role": role, "tool_calls": [{"id": "c"}]}]))
    assert "content" not in request.messages[1]


# --- rejections -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"model": "m",}', b"not json", b"\xff\xfe", b'{"model": NaN}', b'{"temperature": Infinity}'],
    ids=["empty", "truncated", "trailing-comma", "text", "bad-utf8", "NaN", "Infinity"],
)
def test_invalid_json(raw: bytes) -> None:
    exc = reject(raw)
    assert_envelope(exc, None, "invalid_json")
    assert "parse the JSON body" in exc.message


@pytest.mark.parametrize(
    "value",
    ["NaN", "Infinity", "-Infinity"],
)
def test_nan_and_infinity_literals_are_rejected_in_a_valid_looking_body(value: str) -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": ' + value.encode() + b"}"
    assert_envelope(reject(raw), None, "invalid_json")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[]", "array"), (b'"text"', "string"), (b"1", "integer"), (b"null", "null"), (b"true", "boolean")],
)
def test_body_that_is_not_an_object(raw: bytes, kind: str) -> None:
    exc = reject(raw)
    assert_envelope(exc, None, "invalid_json")
    assert kind in exc.message


@pytest.mark.parametrize(
    ("document", "param", "code"),
    [
        ({"messages": [USER]}, "model", "missing_required_parameter"),
        ({"model": 4, "messages": [USER]}, "model", "invalid_type"),
        ({"model": None, "messages": [USER]}, "model", "invalid_type"),
        ({"model": "", "messages": [USER]}, "model", "invalid_value"),
        ({"model": "m"}, "messages", "missing_required_parameter"),
        ({"model": "m", "messages": []}, "messages", "empty_array"),
        ({"model": "m", "messages": {"role": "user"}}, "messages", "invalid_type"),
        ({"model": "m", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "m", "messages": [USER, "hi"]}, "messages[1]", "invalid_type"),
        ({"model": "m", "messages": [USER, {"content": "x"}]}, "messages[1].role", "missing_required_parameter"),
        (
            {"model": "m", "messages": [{"role": None, "content": "x"}]},
            "messages[0].role",
            "missing_required_parameter",
        ),
        ({"model": "m", "messages": [{"role": 1, "content": "x"}]}, "messages[0].role", "invalid_type"),
        ({"model": "m", "messages": [USER, {"role": "robot", "content": "x"}]}, "messages[1].role", "invalid_value"),
        ({"model": "m", "messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
        (
            {"model": "m", "messages": [{"role": "user", "content": None}]},
            "messages[0].content",
            "missing_required_parameter",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        (
            {"model": "m", "messages": [{"role": "user", "content": {"type": "text"}}]},
            "messages[0].content",
            "invalid_type",
        ),
        (
            {"model": "m", "messages": [USER, {"role": "user", "content": [{"text": "no type"}]}]},
            "messages[1].content[0].type",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": 3}]}]},
            "messages[0].content[1].type",
            "missing_required_parameter",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": ["text"]}]}, "messages[0].content[0]", "invalid_type"),
        (
            {"model": "m", "messages": [USER, {"role": "tool", "content": "42"}]},
            "messages[1].tool_call_id",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [{"role": "tool", "content": "42", "tool_call_id": 7}]},
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
        (
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": {"id": "c"}}]},
            "messages[0].tool_calls",
            "invalid_type",
        ),
    ],
)
def test_shape_errors_name_the_field(document: dict[str, Any], param: str, code: str) -> None:
    exc = reject(orjson.dumps(document))
    assert_envelope(exc, param, code)
    assert param in exc.message or code == "invalid_value"


def test_unknown_role_lists_the_supported_roles() -> None:
    exc = reject(body(messages=[{"role": "robot", "content": "x"}]))
    assert "'robot'" in exc.message
    for role in ("assistant", "developer", "function", "system", "tool", "user"):
        assert role in exc.message


def test_first_bad_message_is_reported() -> None:
    exc = reject(body(messages=[USER, USER, {"role": "user"}, {"role": "nope"}]))
    assert exc.param == "messages[2].content"


@pytest.mark.parametrize(
    ("field", "value", "expected", "actual"),
    [
        ("temperature", "hot", "number", "string"),
        ("temperature", True, "number", "boolean"),
        ("n", 1.5, "integer", "number"),
        ("n", "2", "integer", "string"),
        ("stream", "yes", "boolean", "string"),
        ("stream", 1, "boolean", "integer"),
        ("max_tokens", True, "integer", "boolean"),
        ("max_tokens", False, "integer", "boolean"),
        ("max_completion_tokens", 10.5, "integer", "number"),
        ("seed", [1], "integer", "array"),
        ("stop", 5, "string or array", "integer"),
        ("tools", {"type": "function"}, "array", "object"),
        ("tool_choice", ["auto"], "string or object", "array"),
        ("parallel_tool_calls", "false", "boolean", "string"),
        ("stream_options", True, "object", "boolean"),
        ("response_format", "json", "object", "string"),
        ("logit_bias", [], "object", "array"),
        ("user", 12, "string", "integer"),
        ("metadata", "x", "object", "string"),
    ],
)
def test_wrong_scalar_types(field: str, value: Any, expected: str, actual: str) -> None:
    exc = reject(body(**{field: value}))
    assert_envelope(exc, field, "invalid_type")
    assert exc.message == f"Invalid type for '{field}': expected {expected}, but got {actual}."


def test_type_errors_are_checked_after_the_shape() -> None:
    exc = reject(orjson.dumps({"model": "m", "messages": [], "temperature": "hot"}))
    assert exc.param == "messages"
