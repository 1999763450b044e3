"""The key tree (`routemw.config.keys`) is what the loader accepts, key for key.

`tests/docs/` proves the reference documents exactly the tree; these tests prove the loader
refuses every key the tree does not declare and accepts every one it does, section by section,
so that the tree cannot drift from the validator either.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from routemw.config import keys as accepted
from routemw.config import load_config
from routemw.config.schema import RetryConfig
from routemw.errors import ConfigError
from routemw.providers.registry import ProviderRegistry

PROVIDER_TYPES = ProviderRegistry.default(plugins=False).types
BOGUS = "zz_not_a_key"

# What a list item or a named entry needs before the loader reads its other keys (a key entry
# without `models` is refused before its `limits` are read, for instance).
MINIMAL: dict[str, dict[str, Any]] = {
    "providers.NAME": {"type": "openai"},
    "models.ID": {"routes": [{"provider": "echo", "model": "echo"}]},
    "models.ID.routes[]": {"provider": "echo", "model": "echo"},
    "keys[]": {"name": "k", "key": "a-secret-key", "models": ["*"]},
    "prices.MODEL": {"input": 1, "output": 1},
}


NAMES = {"NAME": "p", "ID": "m", "MODEL": "m"}


def concrete(path: str) -> str:
    """The path as the loader names it in a problem: placeholders become names, [] becomes [0]."""
    for placeholder, name in NAMES.items():
        path = path.replace(f".{placeholder}", f".{name}")
    return path.replace("[]", "[0]")


def document_with(path: str, leaf: Any) -> dict[str, Any]:
    """A configuration serving echo, with `leaf` placed at the tree path `path`."""
    document: dict[str, Any] = {"models": {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}}
    parts = re.findall(r"[^.\[\]]+|\[\]", path)  # "keys[].limits" -> keys, [], limits
    node: Any = document
    walked = ""
    for i, part in enumerate(parts):
        walked = walked + part if part == "[]" or not walked else f"{walked}.{part}"
        last = i == len(parts) - 1
        value: Any = leaf if last else [] if parts[i + 1] == "[]" else copy.deepcopy(MINIMAL.get(walked, {}))
        if part == "[]":
            node[:] = [value]  # whatever MINIMAL put there, the item under test is [0]
        else:
            value = node.setdefault(NAMES.get(part, part), value)
        node = value
    return document


def problems(document: dict[str, Any]) -> list[str]:
    try:
        load_config(document, environ={}, provider_types=PROVIDER_TYPES)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def full_walk(node: accepted.Node = accepted.ROOT, path: str = "") -> list[tuple[str, accepted.Node]]:
    """Every path, the keys of `same_as` sections included (the loader checks each place)."""
    out: list[tuple[str, accepted.Node]] = [(path, node)]
    if isinstance(node, accepted.Section):
        for name, child in node.keys.items():
            out += full_walk(child, f"{path}.{name}" if path else name)
    elif isinstance(node, accepted.Named):
        out += full_walk(node.item, f"{path}.{node.placeholder}")
    elif isinstance(node, accepted.Items):
        out += full_walk(node.item, f"{path}[]")
    return out


SECTIONS = [path for path, node in full_walk() if isinstance(node, accepted.Section)]
LEAVES = [path for path, node in full_walk() if path and not isinstance(node, accepted.Section | accepted.Named)]


@pytest.mark.parametrize("path", SECTIONS, ids=lambda p: p or "<root>")
def test_the_loader_refuses_a_key_its_section_does_not_declare(path: str) -> None:
    document = document_with(f"{path}.{BOGUS}" if path else BOGUS, 1)
    assert f"{concrete(path) + '.' if path else ''}{BOGUS}: unknown key" in problems(document)


@pytest.mark.parametrize("path", LEAVES)
def test_the_loader_accepts_every_key_the_tree_declares(path: str) -> None:
    found = problems(document_with(path, None))
    assert not [p for p in found if p.endswith("unknown key")], found


def test_retry_takes_exactly_the_fields_of_its_record() -> None:
    # The loader used to derive retry's keys from RetryConfig; the tree must not lose that.
    assert accepted.RETRY.names == frozenset(RetryConfig.__dataclass_fields__)


def test_walk_stops_at_a_section_documented_elsewhere() -> None:
    paths = dict(accepted.walk())
    assert "keys[].limits" in paths and "keys[].limits.rpm" not in paths
    assert "limits.budget.usd" in paths and "models.ID.routes[].limits" in paths
