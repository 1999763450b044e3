"""What the Gemini API refuses in a `GenerateContentRequest`, for `FakeGemini`.

Two layers. The first walks the body against Google's own OpenAPI description of v1beta
(`recordings/gemini/openapi3-v1beta.json`): every object key must be a declared field (camelCase,
as routemw writes it), every value of the declared JSON type, every enum value a known one; this
is what yields the real API's "Invalid JSON payload received. Unknown name ..." for a stray key,
including the JSON Schema keywords (`additionalProperties`, `$schema`, `const`) the OpenAPI-subset
`parameters` schema does not have. `parametersJsonSchema` and `responseJsonSchema` are free JSON,
as in the real API. The second layer holds the rules the schema cannot say, each with the
message Gemini sends: at least one content; roles `user` and `model` only, alternating;
non-empty parts with exactly one data field and no empty text; named function calls and
responses, as many responses as calls in the turn after a call turn; at most 5 stop sequences and
sampling values in range; `responseJsonSchema` only with a JSON MIME type; function names Gemini
accepts; `allowedFunctionNames` only with mode ANY and declared functions; thought signatures
that are base64, and present on the first call of each step of the current turn for Gemini 3.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

import orjson
from fakes import RECORDINGS

__all__ = ["Rejection", "check_request"]

OPENAPI: Final = RECORDINGS / "gemini" / "openapi3-v1beta.json"

_DATA_FIELDS: Final = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_FUNCTION_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
_PROTO_TYPES: Final = {"string": "TYPE_STRING", "integer": "TYPE_INT32", "number": "TYPE_FLOAT", "boolean": "TYPE_BOOL"}
_RANGES: Final = {"temperature": (0.0, 2.0), "topP": (0.0, 1.0), "candidateCount": (1, 8)}


class Rejection(Exception):
    """A 400 INVALID_ARGUMENT the real API would send; `field` is the proto path, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@cache
def _schemas() -> Mapping[str, Any]:
    schemas: Mapping[str, Any] = orjson.loads(OPENAPI.read_bytes())["components"]["schemas"]
    return schemas


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _join(path: str, key: str) -> str:
    return f"{path}.{_snake(key)}" if path else _snake(key)


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while True:
        if "$ref" in schema:
            schema = _schemas()[schema["$ref"].rsplit("/", 1)[-1]]
        elif "allOf" in schema and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def _walk(value: Any, schema: Mapping[str, Any], path: str) -> None:
    """Unknown keys, wrong JSON types and unknown enum values, as the proto-JSON parser finds them."""
    schema = _resolve(schema)
    kind = schema.get("type")
    if "properties" in schema or kind == "object":
        _walk_object(value, schema, path)
    elif kind == "array":
        if not isinstance(value, list):
            raise Rejection(f"Invalid value at '{path}' (type.googleapis.com/google.protobuf.ListValue), {value!r}")
        for i, item in enumerate(value):
            _walk(item, schema.get("items", {}), f"{path}[{i}]")
    elif kind in _PROTO_TYPES:
        _walk_scalar(value, schema, kind, path)


def _walk_object(value: Any, schema: Mapping[str, Any], path: str) -> None:
    if not isinstance(value, dict):
        raise Rejection(f"Invalid value at '{path}' (type.googleapis.com/google.protobuf.Struct), {value!r}", path)
    properties = schema.get("properties")
    if properties is None:
        extra = schema.get("additionalProperties")
        for key, item in value.items():  # a map (Schema.properties) or free JSON (args, response)
            if isinstance(extra, Mapping):
                _walk(item, extra, f'{path}["{key}"]')
        return
    for key, item in value.items():
        if key not in properties:
            where = f" at '{path}'" if path else ""
            raise Rejection(f'Invalid JSON payload received. Unknown name "{key}"{where}: Cannot find field.', path)
        _walk(item, properties[key], _join(path, key))


def _walk_scalar(value: Any, schema: Mapping[str, Any], kind: str, path: str) -> None:
    if kind == "string" and schema.get("format") == "int64" and isinstance(value, int):
        return  # int64 fields are strings in proto JSON, but numbers are accepted
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise Rejection(f"Invalid value at '{path}' ({_PROTO_TYPES[kind]}), {orjson.dumps(value).decode()}", path)
    enum = schema.get("enum")
    if enum and str(value).upper() not in {e.upper() for e in enum}:
        raise Rejection(f"Invalid value at '{path}' (enum), \"{value}\"", path)


def check_request(body: Any, model: str) -> None:
    """Raise `Rejection` for what the real API refuses in `body`, sent to `model`."""
    if not isinstance(body, dict):
        raise Rejection("Invalid JSON payload received. Expected an object.")
    _walk(body, {"$ref": "#/components/schemas/GenerateContentRequest"}, "")
    contents = body.get("contents")
    if not contents:
        raise Rejection("* GenerateContentRequest.contents: contents is not specified\n", "contents")
    _check_turns(contents)
    for i, content in enumerate(contents):
        _check_parts(content.get("parts"), f"contents[{i}]")
    if "systemInstruction" in body:
        _check_parts(body["systemInstruction"].get("parts"), "system_instruction")
    _check_generation_config(body.get("generationConfig") or {})
    names = _check_tools(body.get("tools") or [])
    _check_tool_config(body.get("toolConfig"), names)
    if model.startswith("gemini-3"):
        _check_current_turn_signatures(contents)


def _check_turns(contents: list[dict[str, Any]]) -> None:
    previous: str | None = None
    for i, content in enumerate(contents):
        role = content.get("role", "user")
        if role not in ("user", "model"):
            raise Rejection("Please use a valid role: user, model.", f"contents[{i}].role")
        if role == previous:
            raise Rejection("Please ensure that multiturn requests alternate between user and model.")
        previous = role
    for i, content in enumerate(contents):
        calls = [p for p in content["parts"] if "functionCall" in p] if content.get("role") == "model" else []
        answers = [p for p in content["parts"] if "functionResponse" in p]
        before = contents[i - 1] if i else None
        if answers and (before is None or not any("functionCall" in p for p in before["parts"])):
            raise Rejection("Please ensure that function response turn comes immediately after a function call turn.")
        after = contents[i + 1] if i + 1 < len(contents) else None
        if calls and after is not None:
            count = sum(1 for p in after["parts"] if "functionResponse" in p)
            if count != len(calls):
                raise Rejection(
                    "Please ensure that the number of function response parts is equal to the number of function "
                    "call parts of the function call turn."
                )


def _check_parts(parts: Any, path: str) -> None:
    if not parts:
        raise Rejection(f"* GenerateContentRequest.{path}.parts: contents.parts must not be empty.\n", f"{path}.parts")
    for j, part in enumerate(parts):
        where = f"{path}.parts[{j}]"
        present = [key for key in _DATA_FIELDS if key in part]
        if not present:
            raise Rejection(
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one initialized field\n",
                where,
            )
        if len(present) > 1:
            raise Rejection(
                f"Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{present[1]}'", where
            )
        if part.get("text") == "":
            raise Rejection("Unable to submit request because it has an empty text parameter.", where)
        for key in ("functionCall", "functionResponse"):
            if key in part and not part[key].get("name"):
                raise Rejection(f"* GenerateContentRequest.{where}.{_snake(key)}.name: Name cannot be empty.\n", where)
        if "functionResponse" in part and not isinstance(part["functionResponse"].get("response"), dict):
            raise Rejection(f"* GenerateContentRequest.{where}.function_response.response: required\n", where)
        _check_blob(part, where)
        if "thoughtSignature" in part and not _is_base64(part["thoughtSignature"]):
            raise Rejection(
                f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 decoding failed for "
                f'"{part["thoughtSignature"]}"',
                where,
            )


def _check_blob(part: Mapping[str, Any], where: str) -> None:
    inline = part.get("inlineData")
    if inline is not None and (not inline.get("mimeType") or not _is_base64(inline.get("data", ""))):
        raise Rejection(f"* GenerateContentRequest.{where}.inline_data: mime_type and base64 data are required\n")
    files = part.get("fileData")
    if files is not None and not files.get("fileUri"):
        raise Rejection(f"* GenerateContentRequest.{where}.file_data.file_uri: file_uri is required\n")


def _is_base64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _check_generation_config(config: Mapping[str, Any]) -> None:
    stops = config.get("stopSequences")
    if stops is not None and not 1 <= len(stops) <= 5:
        raise Rejection(
            "* GenerateContentRequest.generation_config.stop_sequences: the number of stop_sequences values "
            "should be in the supported range is from 1 (inclusive) to 6 (exclusive)\n"
        )
    for key, (low, high) in _RANGES.items():
        value = config.get(key)
        if value is not None and not low <= value <= high:
            raise Rejection(
                f"* GenerateContentRequest.generation_config.{_snake(key)}: {_snake(key)} must be in the range "
                f"[{low}, {high}], got {value}\n"
            )
    if config.get("maxOutputTokens") is not None and config["maxOutputTokens"] < 1:
        raise Rejection("* GenerateContentRequest.generation_config.max_output_tokens: must be positive\n")
    if "responseJsonSchema" in config or "responseSchema" in config:
        if "responseJsonSchema" in config and "responseSchema" in config:
            raise Rejection("response_schema and response_json_schema cannot both be set.")
        if config.get("responseMimeType") not in ("application/json", "text/x.enum"):
            raise Rejection(
                "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be "
                "application/json or text/x.enum when a response schema is set.\n"
            )


def _check_tools(tools: list[Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for i, tool in enumerate(tools):
        for j, declaration in enumerate(tool.get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            name = declaration.get("name", "")
            if not _FUNCTION_NAME.match(name):
                raise Rejection(
                    f"* GenerateContentRequest.{where}.name: Invalid function name. Must start with a letter or an "
                    "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a "
                    "maximum length of 128.\n"
                )
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise Rejection(
                    f"* GenerateContentRequest.{where}: parameters and parameters_json_schema are mutually exclusive\n"
                )
            names.add(name)
    return names


def _check_tool_config(tool_config: Any, names: set[str]) -> None:
    config = (tool_config or {}).get("functionCallingConfig")
    if not config:
        return
    if not names:
        raise Rejection(
            "* GenerateContentRequest.tool_config.function_calling_config: function_calling_config is set "
            "without function_declarations.\n"
        )
    allowed = config.get("allowedFunctionNames")
    if allowed is not None:
        if config.get("mode") != "ANY":
            raise Rejection(
                "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                "allowed_function_names may only be set when the mode is ANY.\n"
            )
        unknown = [name for name in allowed if name not in names]
        if unknown:
            raise Rejection(
                "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: "
                f"function {unknown[0]!r} is not declared.\n"
            )


def _steps_of_current_turn(contents: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Model contents after the last user content that is more than function responses."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any("functionResponse" not in p for p in content["parts"]):
            start = i + 1
    for i in range(start, len(contents)):
        if contents[i].get("role") == "model":
            yield i, contents[i]


def _check_current_turn_signatures(contents: list[dict[str, Any]]) -> None:
    for index, step in _steps_of_current_turn(contents):
        calls = [(j, p) for j, p in enumerate(step["parts"]) if "functionCall" in p]
        if calls and "thoughtSignature" not in calls[0][1]:
            position, part = calls[0]
            raise Rejection(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                "to work correctly, and missing thought_signature may lead to degraded model performance. "
                f"Additional data, function call `default_api:{part['functionCall']['name']}`, "
                f"position {position + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures",
                f"contents[{index}].parts[{position}]",
            )
