"""OpenAI chat request -> Gemini `GenerateContentRequest` body; pure, no I/O.

Deliberate decisions, each with its reason:

- Turns: `user` stays `user`, `assistant` becomes `model`, `tool` results become `functionResponse`
  parts in a `user` turn, and consecutive turns with the same Gemini role are merged into one
  content, because Gemini wants turns to alternate. Empty text is never sent (Gemini rejects
  empty text parts); a turn left with no parts is skipped.
- `system` and `developer` messages, wherever they stand, are hoisted into `systemInstruction`
  (one text part each). A request made only of them sends them as the user turn instead, since
  Gemini needs at least one content.
- Tool schemas go out as `parametersJsonSchema` (and `response_format` schemas as
  `responseJsonSchema`), untouched: those fields take real JSON Schema, so `additionalProperties`,
  `$schema`, `const` and friends need no cleaning (wire-formats T10). The OpenAPI-subset
  `parameters` field is never used. A function whose schema declares no properties at all is sent
  without one, which Gemini reads as "no arguments".
- A `tool` message carries no function name; it is recovered from the earlier assistant tool
  call with the same id (T9). A result that is a JSON object is sent as that object, any other
  JSON value as `{"result": value}`, and plain text as `{"content": text}`, because
  `functionResponse.response` must be an object. Results come out in the order of their calls,
  since Gemini pairs same-named calls and responses by position, not id.
- Thought signatures (T11): a tool call the gateway returned from Gemini carries its signature in
  `extra_content.google.thought_signature` (the field Google's own OpenAI layer uses) and it is
  sent back on the `functionCall` part. When the first call of an assistant turn has none (the
  client dropped the field, or the history came from another provider), models after the 2.x
  generation get Google's documented `skip_thought_signature_validator` instead: without any
  signature they refuse the request with a 400.
- Images: `data:` URLs become `inlineData`; http(s) and gs:// URLs become `fileData` with the
  MIME type guessed from the extension (image/jpeg when it cannot be). Gemini fetches such URLs
  only for some hosts and types, so a URL it cannot read fails upstream (wire-formats O3); the
  gateway never downloads on a client's behalf. `input_audio` and `file` parts with a `data:`
  URL become `inlineData` too.
- Tool call ids are not sent back: Gemini pairs results with calls by name and order.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Mapping
from typing import Any, Final

import orjson

from ...errors import InvalidRequestError, echo

__all__ = ["SKIP_SIGNATURE", "gemini_body", "thought_signature"]

SKIP_SIGNATURE: Final = "skip_thought_signature_validator"
# Families that never ask for signatures back; every later model gets the sentinel when needed.
_NO_SIGNATURE_FAMILIES: Final = ("gemini-1", "gemini-2", "gemma")
_TOOL_CHOICE_MODES: Final = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_AUDIO_TYPES: Final = {"wav": "audio/wav", "mp3": "audio/mp3"}
# OpenAI field -> generationConfig field, for values copied as they are.
_SAMPLING: Final = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("presence_penalty", "presencePenalty"),
    ("frequency_penalty", "frequencyPenalty"),
)
_INTEGERS: Final = (("seed", "seed"), ("n", "candidateCount"))
# Keys a schema with no properties may have and still mean "no arguments".
_EMPTY_SCHEMA_KEYS: Final = frozenset({"type", "properties", "required", "additionalProperties", "$schema"})


def gemini_body(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The Gemini request for an OpenAI body (after drops, clamps and route defaults)."""
    system, contents = _Turns(signatures=not model.startswith(_NO_SIGNATURE_FAMILIES)).translate(body["messages"])
    if not contents and system:
        contents, system = [{"role": "user", "parts": system}], []
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = body.get("tools")
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(tool, f"tools[{i}]") for i, tool in enumerate(tools)]}]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            out["toolConfig"] = tool_config
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    return out


def thought_signature(tool_call: Mapping[str, Any]) -> str | None:
    """The signature the gateway put on a tool call it returned, if the client sent it back."""
    extra = tool_call.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    return signature if isinstance(signature, str) and signature else None


class _Turns:
    """Messages to `systemInstruction` parts and merged `contents`."""

    def __init__(self, *, signatures: bool) -> None:
        self.signatures = signatures
        self.names: dict[str, str] = {}  # tool call id -> function name, from assistant turns so far
        self.positions: dict[str, int] = {}  # tool call id -> its place among its turn's calls
        self.answers: dict[int, int] = {}  # id() of a functionResponse part -> its call's place
        self.system: list[dict[str, Any]] = []
        self.contents: list[dict[str, Any]] = []

    def translate(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        for i, message in enumerate(messages):
            role = message["role"]
            path = f"messages[{i}]"
            if role in ("system", "developer"):
                self.system += [{"text": text} for text in _texts(message.get("content"), f"{path}.content")]
            elif role == "user":
                self._add("user", _user_parts(message.get("content"), f"{path}.content"))
            elif role == "assistant":
                self._add("model", self._model_parts(message, path))
            elif role == "tool":
                self._add("user", [self._tool_result(message, path)])
            elif role == "function":  # the legacy form: the function name is on the message
                name = message.get("name")
                if not isinstance(name, str) or not name:
                    raise InvalidRequestError(f"'{path}.name' is required.", param=f"{path}.name")
                self._add("user", [_function_response(name, message.get("content"), path)])
        for content in self.contents:
            self._in_call_order(content["parts"])
        return self.system, self.contents

    def _add(self, role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if self.contents and self.contents[-1]["role"] == role:
            self.contents[-1]["parts"].extend(parts)
        else:
            self.contents.append({"role": role, "parts": parts})

    def _model_parts(self, message: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": t} for t in _texts(message.get("content"), f"{path}.content")]
        calls: list[dict[str, Any]] = []
        for j, call in enumerate(message.get("tool_calls") or ()):
            call_path = f"{path}.tool_calls[{j}]"
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise InvalidRequestError(f"'{call_path}.function.name' is required.", param=f"{call_path}.function")
            if isinstance(call.get("id"), str):
                self.names[call["id"]] = function["name"]
                self.positions[call["id"]] = j
            part: dict[str, Any] = {"functionCall": _function_call(function, f"{call_path}.function")}
            signature = thought_signature(call)
            if signature is not None:
                part["thoughtSignature"] = signature
            calls.append(part)
        legacy = message.get("function_call")
        if isinstance(legacy, Mapping) and isinstance(legacy.get("name"), str):
            calls.append({"functionCall": _function_call(legacy, f"{path}.function_call")})
        if calls and self.signatures and "thoughtSignature" not in calls[0]:
            calls[0]["thoughtSignature"] = SKIP_SIGNATURE  # only the first call of a step is checked
        return parts + calls

    def _tool_result(self, message: Mapping[str, Any], path: str) -> dict[str, Any]:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or call_id not in self.names:
            raise InvalidRequestError(
                f"'{path}' answers tool call {echo(repr(call_id))}, but no earlier assistant message made that call; "
                "Gemini needs the function's name, which only that call carries.",
                param=f"{path}.tool_call_id",
            )
        part = _function_response(self.names[call_id], message.get("content"), path)
        self.answers[id(part)] = self.positions[call_id]
        return part

    def _in_call_order(self, parts: list[dict[str, Any]]) -> None:
        """Function responses in the order of their calls, the other parts where they were.

        Gemini pairs same-named calls and responses by order; OpenAI clients may answer parallel
        calls in any order, since they pair by id.
        """
        answers = [part for part in parts if id(part) in self.answers]
        if len(answers) < 2:
            return
        ordered = iter(sorted(answers, key=lambda part: self.answers[id(part)]))
        parts[:] = [next(ordered) if id(part) in self.answers else part for part in parts]


def _function_call(function: Mapping[str, Any], path: str) -> dict[str, Any]:
    arguments = function.get("arguments")
    if arguments is None or arguments == "":
        args: Any = {}  # a call without arguments: "" is what OpenAI streams for it
    elif isinstance(arguments, str):
        try:
            args = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            args = None
    else:
        args = arguments
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"'{path}.arguments' must be a JSON object for Gemini, got {echo(repr(arguments))}.",
            param=f"{path}.arguments",
        )
    return {"name": function["name"], "args": args}


def _function_response(name: str, content: Any, path: str) -> dict[str, Any]:
    text = "\n".join(_texts(content, f"{path}.content", keep_empty=True))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        response: dict[str, Any] = {"content": text}
    else:
        response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


def _texts(content: Any, path: str, *, keep_empty: bool = False) -> list[str]:
    """The text of a content that may only hold text (system, assistant and tool messages)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content or keep_empty else []
    texts: list[str] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind in ("text", "refusal") and isinstance(part.get(kind), str):
            if part[kind] or keep_empty:
                texts.append(part[kind])
        else:
            raise InvalidRequestError(
                f"Content parts of type {echo(repr(kind))} are not supported here by Gemini.", param=f"{path}[{j}]"
            )
    return texts


def _user_parts(content: Any, path: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content or ()):
        part_path = f"{path}[{j}]"
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, Mapping) else image
            parts.append(_media(url, f"{part_path}.image_url.url", default_type="image/jpeg"))
        elif kind == "input_audio":
            parts.append(_audio(part.get("input_audio"), f"{part_path}.input_audio"))
        elif kind == "file":
            file = part.get("file")
            data = file.get("file_data") if isinstance(file, Mapping) else None
            if not isinstance(data, str) or not data.startswith("data:"):
                raise InvalidRequestError(
                    "Gemini takes files only inline, as a data: URL in `file_data`.", param=f"{part_path}.file"
                )
            parts.append(_media(data, f"{part_path}.file.file_data", default_type="application/octet-stream"))
        else:
            raise InvalidRequestError(
                f"Content parts of type {echo(repr(kind))} are not supported by Gemini.", param=part_path
            )
    return parts


def _media(url: Any, path: str, *, default_type: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise InvalidRequestError(f"'{path}' must be a URL.", param=path)
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        mime_type, _, encoding = header.partition(";")
        if not comma or encoding != "base64" or not _is_base64(data):
            raise InvalidRequestError(f"'{path}' must be a base64 data: URL.", param=path)
        return {"inlineData": {"mimeType": mime_type or default_type, "data": data}}
    if url.startswith(("http://", "https://", "gs://")):
        guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
        return {"fileData": {"mimeType": guessed or default_type, "fileUri": url}}
    raise InvalidRequestError(f"'{path}' must be a data:, http(s) or gs:// URL.", param=path)


def _audio(audio: Any, path: str) -> dict[str, Any]:
    data = audio.get("data") if isinstance(audio, Mapping) else None
    audio_format = audio.get("format") if isinstance(audio, Mapping) else None
    mime_type = _AUDIO_TYPES.get(audio_format) if isinstance(audio_format, str) else None
    if not isinstance(data, str) or mime_type is None or not _is_base64(data):
        raise InvalidRequestError(f"'{path}' needs base64 `data` and a `format` of wav or mp3.", param=path)
    return {"inlineData": {"mimeType": mime_type, "data": data}}


def _is_base64(data: str) -> bool:
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _declaration(tool: Any, path: str) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, Mapping) else None
    if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(function, Mapping):
        raise InvalidRequestError("Gemini takes only `function` tools.", param=path)
    if not isinstance(function.get("name"), str):
        raise InvalidRequestError(f"'{path}.function.name' is required.", param=f"{path}.function.name")
    declaration: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if isinstance(parameters, Mapping) and not _declares_nothing(parameters):
        declaration["parametersJsonSchema"] = parameters
    return declaration


def _declares_nothing(schema: Mapping[str, Any]) -> bool:
    return not schema.get("properties") and set(schema) <= _EMPTY_SCHEMA_KEYS


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _TOOL_CHOICE_MODES:
        return {"functionCallingConfig": {"mode": _TOOL_CHOICE_MODES[choice]}}
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if isinstance(function, Mapping) and isinstance(function.get("name"), str):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [function["name"]]}}
    raise InvalidRequestError(f"Gemini cannot express tool_choice {echo(repr(choice))}.", param="tool_choice")


def _generation_config(body: Mapping[str, Any]) -> dict[str, Any]:
    # Presence, not truthiness, decides: temperature 0 and seed 0 are values (wire-formats P1).
    config: dict[str, Any] = {}
    for key, name in _SAMPLING:
        if body.get(key) is not None:
            config[name] = body[key]
    for key, name in _INTEGERS:
        if body.get(key) is not None:
            config[name] = int(body[key])
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = int(limit)
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif stop:
        config["stopSequences"] = list(stop)
    config.update(_response_format(body.get("response_format")))
    if body.get("logprobs") is True:
        # The profile refuses logprobs; a config override that claims them cannot make them real.
        raise InvalidRequestError("The Gemini adapter does not translate logprobs.", param="logprobs")
    return config


def _response_format(response_format: Any) -> dict[str, Any]:
    if response_format is None:
        return {}
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if isinstance(schema, Mapping):
            out["responseJsonSchema"] = schema
        return out
    raise InvalidRequestError(f"Gemini cannot express response_format {echo(repr(kind))}.", param="response_format")
