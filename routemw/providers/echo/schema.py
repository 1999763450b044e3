"""The smallest JSON value a schema accepts, and a check of a value against a schema.

Echo answers JSON modes and tool calls with data that must parse on the client's side
(`parse()` with a pydantic model, LangChain's structured output), so it needs a valid instance
of whatever schema it is given, and a way to tell whether the user's own message already is
one. Both cover the subset of JSON Schema that OpenAI's structured outputs accept and that the
SDKs generate from pydantic models: `type` (one or a list), `enum`, `const`, `properties`,
`required`, `additionalProperties`, `items`, `prefixItems`, `minItems`, `maxItems`,
`minLength`, `maxLength`, `pattern`, `format`, `minimum`, `maximum`, the exclusive bounds,
`multipleOf`, `anyOf`, `oneOf`, `allOf`, and local `$ref` into `$defs` / `definitions` (or `#`).

The generator picks the first workable option wherever there is a choice (the first `enum`
value, the first `type`, the first `anyOf` branch), fills only `required` properties, and
meets the size and range bounds with the least it can. A branch that would recurse without end
(a `$ref` back into a schema still being built) is abandoned for the next one, so recursive
models terminate. It cannot invent a string for an arbitrary `pattern`; it returns its best
effort there, which is why the result is not re-checked.

The checker ignores keywords it does not know (JSON Schema's own rule) but says no to a `$ref`
it cannot resolve and to a `pattern` Python cannot read: it is used to decide whether the
user's message may stand as the answer, and a wrong yes would hand the client data that fails
its own validation. It is not a general validator and does not try to be: jsonschema is not a
dependency, and this subset is all echo needs.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

__all__ = ["conforms", "minimal_instance"]

# The least value of each format that pydantic and common validators accept.
_FORMAT_EXAMPLES: Final = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "a@example.com",
    "idn-email": "a@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "0.0.0.0",
    "ipv6": "::",
    "uri": "https://example.com",
    "iri": "https://example.com",
    "uri-reference": "https://example.com",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


class _Unworkable(Exception):
    """This branch of the schema cannot be instantiated (endless recursion, an unresolved $ref)."""


def minimal_instance(schema: Any) -> Any:
    """A small value valid against `schema` (see the module docstring for the subset)."""
    try:
        return _Generator(schema).build(schema, frozenset())
    except _Unworkable:
        return {}


def conforms(value: Any, schema: Any) -> bool:
    """Whether `value` satisfies `schema` (the subset in the module docstring)."""
    try:
        return _check(value, schema, schema)
    except _Unworkable:
        return False


def _resolve(root: Any, ref: str) -> Any:
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise _Unworkable(ref)  # a remote reference: nothing is fetched
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise _Unworkable(ref)
        node = node[part]
    return node


class _Generator:
    def __init__(self, root: Any) -> None:
        self.root = root

    def build(self, schema: Any, expanding: frozenset[str]) -> Any:
        if schema is False:
            raise _Unworkable("false")
        if not isinstance(schema, Mapping):
            return {}  # `true`: anything goes, and an object is what JSON modes want at the top
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in expanding:
                raise _Unworkable(ref)  # endless recursion along this path: try another branch
            return self.build(_resolve(self.root, ref), expanding | {ref})
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self._first_workable(branches, expanding)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            return self._all_of(schema, all_of, expanding)
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else [_implied_type(schema)]
        last: _Unworkable | None = None
        for each in kinds:
            try:
                return self._of_type(str(each), schema, expanding)
            except _Unworkable as exc:
                last = exc
        raise last or _Unworkable("no type")

    def _first_workable(self, branches: list[Any], expanding: frozenset[str]) -> Any:
        last: _Unworkable | None = None
        for branch in branches:
            try:
                return self.build(branch, expanding)
            except _Unworkable as exc:
                last = exc
        raise last or _Unworkable("no branch")

    def _all_of(self, schema: Mapping[str, Any], parts: list[Any], expanding: frozenset[str]) -> Any:
        # Pydantic emits allOf with a single $ref (a described nested model); several object
        # parts are merged, which covers the other common use.
        rest = {key: value for key, value in schema.items() if key != "allOf"}
        if len(parts) == 1 and not ({"type", "properties", "required"} & rest.keys()):
            return self.build(parts[0], expanding)
        merged: dict[str, Any] = {}
        for part in [rest, *parts]:
            value = self.build(part, expanding)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged

    def _of_type(self, kind: str, schema: Mapping[str, Any], expanding: frozenset[str]) -> Any:
        if kind == "object":
            properties = schema.get("properties")
            properties = properties if isinstance(properties, Mapping) else {}
            required = schema.get("required")
            out: dict[str, Any] = {}
            for name in required if isinstance(required, list) else []:
                out[name] = self.build(properties.get(name, True), expanding)
            return out
        if kind == "array":
            low = _int(schema.get("minItems"), 0)
            prefix = schema.get("prefixItems")
            prefix = prefix if isinstance(prefix, list) else []
            items = [self.build(sub, expanding) for sub in prefix[: max(low, 0)]]
            while len(items) < low:
                items.append(self.build(schema.get("items", True), expanding))
            return items
        if kind == "string":
            example = _FORMAT_EXAMPLES.get(str(schema.get("format")))
            low = _int(schema.get("minLength"), 0)
            if example is not None and len(example) >= low:
                return example
            return "a" * low
        if kind in ("integer", "number"):
            return _least_number(schema, integer=kind == "integer")
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        raise _Unworkable(kind)


def _implied_type(schema: Mapping[str, Any]) -> str:
    """The type a schema without `type` is about, from its keywords (an object when nothing says)."""
    if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
        return "array"
    if {"minLength", "maxLength", "pattern", "format"} & schema.keys():
        return "string"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"} & schema.keys():
        return "number"
    return "object"


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _least_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """0 when the bounds allow it, else the value nearest the violated bound that fits them all."""
    step = _number(schema.get("multipleOf"))
    if step is not None and (step <= 0 or (integer and not step.is_integer())):
        step = None  # a fractional step for integers: every integer in range that 0 stands for
    unit = step or 1.0
    lows = [v for v in (_number(schema.get("minimum")), _number(schema.get("exclusiveMinimum"))) if v is not None]
    highs = [v for v in (_number(schema.get("maximum")), _number(schema.get("exclusiveMaximum"))) if v is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    candidates = [0.0]
    if low is not None:
        base = math.floor(low / unit) * unit
        candidates += [low, base, base + unit]
    if high is not None:
        top = math.ceil(high / unit) * unit
        candidates += [high, top, top - unit]
    if low is not None and high is not None:
        candidates.append((low + high) / 2)
    for value in candidates:
        if _check_number(value, schema) and (not integer or value.is_integer()):
            return int(value) if value.is_integer() else value
    return int(low) if integer and low is not None else (low if low is not None else 0)


# -- checking -----------------------------------------------------------------------------------


def _check(value: Any, schema: Any, root: Any) -> bool:
    if schema is True or schema == {}:
        return True
    if schema is False or not isinstance(schema, Mapping):
        return False
    ref = schema.get("$ref")
    if isinstance(ref, str) and not _check(value, _resolve(root, ref), root):
        return False
    if "const" in schema and not _equal(value, schema["const"]):
        return False
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_equal(value, option) for option in enum):
        return False
    any_of = schema.get("anyOf")
    if isinstance(any_of, list) and not any(_check(value, sub, root) for sub in any_of):
        return False
    one_of = schema.get("oneOf")
    if isinstance(one_of, list) and sum(_check(value, sub, root) for sub in one_of) != 1:
        return False
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and not all(_check(value, sub, root) for sub in all_of):
        return False
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_TYPE_CHECKS.get(str(each), _never)(value) for each in kinds):
            return False
    if isinstance(value, dict):
        return _check_object(value, schema, root)
    if isinstance(value, list):
        return _check_array(value, schema, root)
    if isinstance(value, str):
        return _check_string(value, schema)
    if _number(value) is not None:
        return _check_number(float(value), schema)
    return True


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], root: Any) -> bool:
    required = schema.get("required")
    if isinstance(required, list) and not all(name in value for name in required):
        return False
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in properties:
            if not _check(item, properties[name], root):
                return False
        elif not _check(item, extra, root):
            return False
    return True


def _check_array(value: list[Any], schema: Mapping[str, Any], root: Any) -> bool:
    if len(value) < _int(schema.get("minItems"), 0):
        return False
    most = schema.get("maxItems")
    if isinstance(most, int) and len(value) > most:
        return False
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else schema.get("items", True)
        if not _check(item, sub, root):
            return False
    return True


def _check_string(value: str, schema: Mapping[str, Any]) -> bool:
    if len(value) < _int(schema.get("minLength"), 0):
        return False
    most = schema.get("maxLength")
    if isinstance(most, int) and len(value) > most:
        return False
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.search(pattern, value) is None:
                return False
        except re.error:
            return False  # a pattern Python cannot read: do not claim the value fits
    check = _FORMAT_CHECKS.get(str(schema.get("format")))
    return check is None or check(value)


def _check_number(value: float, schema: Mapping[str, Any]) -> bool:
    low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
    low_ex, high_ex = _number(schema.get("exclusiveMinimum")), _number(schema.get("exclusiveMaximum"))
    step = _number(schema.get("multipleOf"))
    if (low is not None and value < low) or (high is not None and value > high):
        return False
    if (low_ex is not None and value <= low_ex) or (high_ex is not None and value >= high_ex):
        return False
    return step is None or step <= 0 or math.isclose(value / step, round(value / step))


def _equal(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, and 1 is 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def _never(value: Any) -> bool:
    return False


def _is_number(value: Any) -> bool:
    return _number(value) is not None


def _is_integer(value: Any) -> bool:
    number = _number(value)
    return number is not None and math.isfinite(number) and number == int(number)


_TYPE_CHECKS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _parses(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            parse(value)
        except ValueError:
            return False
        return True

    return check


# Formats whose values pydantic parses into objects; others are annotations, as JSON Schema says.
_FORMAT_CHECKS: Final[Mapping[str, Callable[[str], bool]]] = {
    "date-time": _parses(lambda v: datetime.datetime.fromisoformat(v.replace("z", "Z"))),
    "date": _parses(datetime.date.fromisoformat),
    "time": _parses(lambda v: datetime.time.fromisoformat(v.replace("z", "Z"))),
    "uuid": _parses(uuid.UUID),
    "ipv4": _parses(ipaddress.IPv4Address),
    "ipv6": _parses(ipaddress.IPv6Address),
}
