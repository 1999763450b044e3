"""The reference pages say what the code does: config keys, provider options, capabilities,
headers and metric names, each compared with what the code itself declares or contains.

Nothing here is a hand-kept list of names. Config keys come from the loader's key tree
(`routemw.config.keys`, which `tests/config/test_keys.py` ties to the validator), provider
options from the registry the loader validates against, capabilities from their enum, and
header and metric names from the string literals of the `routemw` package itself.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from markdown_source import DOCS, ROOT, tables

from routemw.capabilities import LIMITS, Capability
from routemw.config import keys as accepted
from routemw.providers.registry import ProviderRegistry

REFERENCE = DOCS / "configuration.md"
KEY_TABLE = ["key", "type", "default", "meaning"]
CODE = re.compile(r"^`([^`]+)`$")


def documented_keys() -> dict[str, list[str]]:
    """Rows of the reference's key tables by path: [type, default, meaning]."""
    rows: dict[str, list[str]] = {}
    for header, body in tables(REFERENCE):
        if header != KEY_TABLE:
            continue
        for row in body:
            match = CODE.match(row[0])
            assert match, f"{REFERENCE.name}: a key table row must start with a `path`: {row}"
            assert match.group(1) not in rows, f"{match.group(1)} is documented twice"
            rows[match.group(1)] = row[1:]
    return rows


DOCUMENTED = documented_keys()
TREE = dict(accepted.walk())
PROVIDER_TYPES = ProviderRegistry.default(plugins=False).types
OPTION_PREFIX = "providers.NAME."


def option_rows() -> dict[str, list[str]]:
    """Documented provider keys that are not common to every provider: the types' own options."""
    return {path: row for path, row in DOCUMENTED.items() if path.startswith(OPTION_PREFIX) and path not in TREE}


def test_the_reference_has_key_tables() -> None:
    assert len(DOCUMENTED) > 50


def test_every_key_the_loader_accepts_is_documented() -> None:
    missing = sorted(set(TREE) - set(DOCUMENTED))
    assert not missing, f"accepted by the loader but not in {REFERENCE.name}: {missing}"


def test_every_documented_key_is_accepted() -> None:
    unknown = sorted(set(DOCUMENTED) - set(TREE) - set(option_rows()))
    assert not unknown, f"documented in {REFERENCE.name} but refused by the loader: {unknown}"


@pytest.mark.parametrize("path", sorted(TREE))
def test_type_and_default_are_the_trees(path: str) -> None:
    node = TREE[path]
    if path not in DOCUMENTED:
        pytest.fail(f"{path} is not documented")
    type_, default, meaning = DOCUMENTED[path]
    assert (type_, default) == (node.type, node.default_text)
    assert meaning, f"{path}: say what it means"


def test_a_section_documented_elsewhere_takes_that_sections_own_keys() -> None:
    # `keys[].limits` has one row and points at `limits`: that is only true while each of its
    # keys is the very node documented under `limits`.
    def sections(node: accepted.Node) -> Iterable[accepted.Section]:
        if isinstance(node, accepted.Section):
            yield node
            for child in node.keys.values():
                yield from sections(child)
        elif isinstance(node, accepted.Named | accepted.Items):
            yield from sections(node.item)

    referring = [s for s in sections(accepted.ROOT) if s.same_as is not None]
    assert referring
    for section in referring:
        canonical = TREE[section.same_as or ""]
        assert isinstance(canonical, accepted.Section)
        for name, child in section.keys.items():
            assert canonical.keys.get(name) is child, f"{name} differs from {section.same_as}.{name}"


def test_every_provider_option_is_documented_and_every_documented_one_exists() -> None:
    registered = {f"{OPTION_PREFIX}{option}" for options in PROVIDER_TYPES.values() for option in options}
    assert registered, "the built-in providers register options"
    assert registered - set(DOCUMENTED) == set(), "provider options missing from the reference"
    assert set(option_rows()) - registered == set(), "documented provider options no type registers"


def test_every_capability_is_in_the_capabilities_table() -> None:
    page = (DOCS / "capabilities.md").read_text(encoding="utf-8")
    table = page[page.index("| capability |") :]
    for name in [c.value for c in Capability] + list(LIMITS):
        assert f"`{name}`" in table, f"capability {name} is not in the capabilities table"


# -- names in the code --------------------------------------------------------------------------

HEADER = re.compile(r"x-[a-z0-9-]+|retry-after(?:-ms)?")
METRIC = re.compile(r"routemw_[a-z][a-z0-9_]*")
ENVIRONMENT = re.compile(r"ROUTEMW_[A-Z0-9_]+|[A-Z][A-Z0-9]*_API_KEY")
# Literals that look like a header name but are not one.
NOT_HEADERS = {"x-gzip": "a content coding (gzip's old name), not a header"}


def literals(source: str) -> tuple[set[str], set[str]]:
    """(whole string literals, leading constant parts of f-strings) in a module's source."""
    whole: set[str] = set()
    prefixes: set[str] = set()
    tree = ast.parse(source)
    fstring_parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            prefixes.add(str(node.values[0].value))
        elif isinstance(node, ast.Constant) and id(node) not in fstring_parts:
            if isinstance(node.value, str):
                whole.add(node.value)
            elif isinstance(node.value, bytes):
                whole.add(node.value.decode("latin-1"))
    return whole, prefixes


def names_in(sources: Iterable[str], pattern: re.Pattern[str], *, fold: bool = False) -> tuple[set[str], set[str]]:
    """Names matching `pattern` in `sources`: whole literals, and f-string prefixes ending in - or _.

    `fold`: compare in lower case (header names are case-insensitive; metric names are not).
    """
    names: set[str] = set()
    prefixes: set[str] = set()
    for source in sources:
        whole, leading = literals(source)
        if fold:
            whole, leading = {s.lower() for s in whole}, {p.lower() for p in leading}
        names |= {s for s in whole if pattern.fullmatch(s)}
        prefixes |= {p for p in leading if p[-1:] in "-_" and pattern.fullmatch(p.rstrip("-_"))}
    return names, prefixes


def package_sources() -> list[str]:
    return [path.read_text(encoding="utf-8") for path in sorted((ROOT / "routemw").rglob("*.py"))]


def documented_code_names(page: Path) -> set[str]:
    return {m.lower() for m in re.findall(r"`([^`\s]+)", page.read_text(encoding="utf-8"))}


def test_the_name_scanner_finds_literals_bytes_and_fstring_prefixes() -> None:
    source = (
        'H = "x-routemw-new"\nB = b"x-also-new"\nF = f"x-ratelimit-used-{kind}"\n'
        'M = "routemw_requests_total"\nL = f"routemw_latency_{unit}"\nN = "not-a-header"\n'
    )
    assert names_in([source], HEADER, fold=True) == ({"x-routemw-new", "x-also-new"}, {"x-ratelimit-used-"})
    assert names_in([source], METRIC) == ({"routemw_requests_total"}, {"routemw_latency_"})
    assert names_in(['E = "ROUTEMW_CONFIG"\nK = "X_API_KEY"'], ENVIRONMENT) == ({"ROUTEMW_CONFIG", "X_API_KEY"}, set())


def test_every_header_name_in_the_code_is_on_the_http_reference() -> None:
    names, prefixes = names_in(package_sources(), HEADER, fold=True)
    names -= set(NOT_HEADERS)
    assert {"x-request-id", "x-routemw-provider", "retry-after"} <= names  # the scanner sees the code
    documented = documented_code_names(DOCS / "http.md")
    assert sorted(names - documented) == [], "headers in the code missing from docs/http.md"
    for prefix in prefixes:
        assert any(name.startswith(prefix) for name in documented), f"no {prefix}* header in docs/http.md"


def test_every_metric_name_in_the_code_is_on_the_production_page() -> None:
    names, prefixes = names_in(package_sources(), METRIC)
    page = (DOCS / "production.md").read_text(encoding="utf-8")
    # Prometheus clients add suffixes (`_total`, `_bucket`): the documented name contains the code's.
    assert sorted(name for name in names if name not in page) == [], "metrics missing from docs/production.md"
    for prefix in prefixes:
        assert prefix in page, f"no {prefix}* metric in docs/production.md"


def test_every_environment_variable_in_the_code_is_in_the_reference() -> None:
    names, _ = names_in(package_sources(), ENVIRONMENT)
    assert {"ROUTEMW_CONFIG", "OPENAI_API_KEY"} <= names  # the scanner sees the code
    section = REFERENCE.read_text(encoding="utf-8").split("## Environment variables", 1)[1]
    assert sorted(name for name in names if f"`{name}`" not in section) == []
