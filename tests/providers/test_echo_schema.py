"""Echo's JSON Schema subset: the smallest valid instance of a schema, and the check against one."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Annotated, Any, Literal

import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from routemw.providers.echo.schema import conforms, minimal_instance

# -- the generator ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({}, {}),
        (True, {}),
        ({"type": "object"}, {}),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),  # only required properties
        (
            {
                "type": "object",
                "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "boolean"}},
                "required": ["a", "b", "c"],
                "additionalProperties": False,
            },
            {"a": "", "b": 0, "c": False},
        ),
        ({"type": "string", "minLength": 3}, "aaa"),
        ({"type": "string", "format": "date-time"}, "1970-01-01T00:00:00Z"),
        ({"type": "string", "format": "uuid"}, "00000000-0000-0000-0000-000000000000"),
        ({"type": "string", "format": "email", "minLength": 20}, "a" * 20),  # the bound wins over the example
        ({"enum": ["red", "blue"], "type": "string"}, "red"),
        ({"const": "fixed"}, "fixed"),
        ({"type": ["null", "string"]}, None),  # the first type
        ({"type": ["string", "null"]}, ""),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, 0),  # the first branch
        ({"oneOf": [{"type": "boolean"}, {"type": "string"}]}, False),
        ({"type": "array", "items": {"type": "integer", "minimum": 3}, "minItems": 2}, [3, 3]),
        ({"type": "array", "items": {"type": "string"}}, []),
        ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2}, ["", 0]),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "minimum": -5}, 0),  # 0 when the bounds allow it
        ({"type": "integer", "maximum": -2}, -2),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "integer", "minimum": 7, "multipleOf": 5}, 10),
        ({"type": "integer", "exclusiveMaximum": -7, "multipleOf": 5}, -10),
        ({"type": "number", "minimum": 0.5}, 0.5),
        ({"type": "number", "exclusiveMinimum": 0}, 1),
        ({"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 0.7}, 0.6),
        ({"type": "null"}, None),
        ({"minLength": 2}, "aa"),  # the type implied by the keywords
        ({"minimum": 4}, 4),
        ({"minItems": 1}, [{}]),
        ({"allOf": [{"$ref": "#/$defs/A"}], "$defs": {"A": {"const": 1}}}, 1),
        (
            {"allOf": [{"type": "object", "required": ["a"]}, {"type": "object", "required": ["b"]}]},
            {"a": {}, "b": {}},
        ),
    ],
)
def test_minimal_instance(schema: Any, expected: Any) -> None:
    value = minimal_instance(schema)

    assert value == expected and type(value) is type(expected)
    assert conforms(value, schema)


def test_refs_resolve_into_defs_and_definitions_and_the_root() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"$ref": "#/definitions/B"}, "c": {"$ref": "#"}},
        "required": ["a", "b"],
        "$defs": {"A": {"type": "string", "minLength": 1}},
        "definitions": {"B": {"type": "integer", "minimum": 2}},
    }

    assert minimal_instance(schema) == {"a": "a", "b": 2}


def test_recursion_takes_the_branch_that_ends() -> None:
    # A linked list as pydantic writes it: `next: Optional[Node]`, required in strict mode.
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "next": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["value", "next"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "properties": {"head": {"$ref": "#/$defs/Node"}, "tail": {"$ref": "#/$defs/Node"}},
        "required": ["head", "tail"],
    }

    assert minimal_instance(schema) == {"head": {"value": 0, "next": None}, "tail": {"value": 0, "next": None}}


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"me": {"$ref": "#"}}, "required": ["me"]},  # no way out
        {"type": "object", "properties": {"x": {"$ref": "#/$defs/missing"}}, "required": ["x"]},
        {"type": "object", "properties": {"x": {"$ref": "https://example.test/s.json"}}, "required": ["x"]},
        {"type": "object", "properties": {"x": False}, "required": ["x"]},
    ],
)
def test_a_schema_without_a_finite_instance_gives_an_empty_object(schema: Any) -> None:
    assert minimal_instance(schema) == {}


# -- pydantic models, as the SDK sends them -------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    number: Annotated[int, Field(ge=1)]


class Node(BaseModel):
    value: int
    next: Node | None


class Person(BaseModel):
    name: Annotated[str, Field(min_length=2)]
    age: Annotated[int, Field(gt=17, multiple_of=2)]
    score: Annotated[float, Field(gt=0, lt=1)]
    born: datetime.date
    seen: datetime.datetime
    id: uuid.UUID
    color: Color
    kind: Literal["a", "b"]
    home: Address
    work: Address | None
    tags: Annotated[list[str], Field(min_length=2)]
    pets: list[Address]
    either: int | str
    chain: Node


@pytest.mark.parametrize("model", [Person, Address, Node])
@pytest.mark.parametrize("strict", [True, False], ids=["sdk-strict", "pydantic"])
def test_pydantic_models_accept_the_instance(model: type[BaseModel], strict: bool) -> None:
    schema = to_strict_json_schema(model) if strict else model.model_json_schema()
    value = minimal_instance(schema)

    model.model_validate(value)  # raises if the instance does not fit
    assert conforms(value, schema)


# -- the checker --------------------------------------------------------------------------------

OBJECT = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("value", "schema", "fits"),
    [
        ({"name": "x"}, OBJECT, True),
        ({"name": "x", "age": 3}, OBJECT, True),
        ({"age": 3}, OBJECT, False),  # required
        ({"name": "x", "extra": 1}, OBJECT, False),  # additionalProperties false
        ({"name": "x", "age": -1}, OBJECT, False),
        ({"name": "x", "age": 1.5}, OBJECT, False),
        ({"name": "x", "age": 2.0}, OBJECT, True),  # JSON's 2.0 is an integer
        ({"name": "x", "age": True}, OBJECT, False),  # a boolean is no number
        ({"name": 1}, OBJECT, False),
        ({"a": 1}, {"type": "object", "additionalProperties": {"type": "integer"}}, True),
        ({"a": "1"}, {"type": "object", "additionalProperties": {"type": "integer"}}, False),
        ([1, 2], {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}, True),
        ([1], {"type": "array", "minItems": 2}, False),
        ([1, 2, 3], {"type": "array", "maxItems": 2}, False),
        (["a", 1], {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, True),
        ("ab", {"type": "string", "minLength": 3}, False),
        ("abcd", {"type": "string", "maxLength": 3}, False),
        ("abc", {"type": "string", "pattern": "^a.c$"}, True),
        ("abd", {"type": "string", "pattern": "^a.c$"}, False),
        ("x", {"type": "string", "pattern": "("}, False),  # unreadable pattern: no claim of fit
        ("2024-02-30", {"type": "string", "format": "date"}, False),
        ("2024-02-29", {"type": "string", "format": "date"}, True),
        ("not a uuid", {"type": "string", "format": "uuid"}, False),
        ("anything", {"type": "string", "format": "email"}, True),  # formats pydantic parses are checked
        (1, {"enum": [1, 2]}, True),
        (True, {"enum": [1, 2]}, False),
        (True, {"const": True}, True),
        (1, {"const": True}, False),
        (None, {"type": ["string", "null"]}, True),
        (3, {"anyOf": [{"type": "string"}, {"type": "integer"}]}, True),
        (3.5, {"anyOf": [{"type": "string"}, {"type": "integer"}]}, False),
        (3, {"oneOf": [{"type": "number"}, {"type": "integer"}]}, False),  # both match: not exactly one
        (3, {"allOf": [{"minimum": 1}, {"maximum": 2}]}, False),
        (10, {"type": "integer", "multipleOf": 5}, True),
        (11, {"type": "integer", "multipleOf": 5}, False),
        (5, {"type": "integer", "exclusiveMaximum": 5}, False),
        (
            {"a": {"a": None}},
            {
                "$ref": "#/$defs/N",
                "$defs": {
                    "N": {"type": "object", "properties": {"a": {"anyOf": [{"$ref": "#/$defs/N"}, {"type": "null"}]}}}
                },
            },
            True,
        ),
        ({"x": 1}, {"$ref": "#/$defs/missing"}, False),
        ({}, {"not-a-keyword-we-know": 1}, True),
    ],
)
def test_conforms(value: Any, schema: Any, fits: bool) -> None:
    assert conforms(value, schema) is fits
