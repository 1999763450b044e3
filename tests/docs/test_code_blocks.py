"""Every example in the docs and the README is code that works.

- every ```python block compiles (top-level `await` allowed, as in a notebook or a REPL);
- a block marked `<!-- runnable -->` runs, in process, in a directory holding a `routemw.yaml`
  that serves `echo`; one marked `<!-- runnable: server -->` first gets the embedded default
  served on a free loopback port, and its `http://127.0.0.1:8000` is pointed there;
- every ```yaml block is a config the loader and the gateway accept (a block without `models`
  gets `echo` added, since a config must serve something; `${VAR}` resolves to a placeholder),
  unless marked `<!-- fragment -->`, which must still parse;
- every ```json block parses.
"""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from markdown_source import Block, all_blocks
from servers import serve

from routemw import Gateway
from routemw.config import default_document

PYTHON = all_blocks("python")
RUNNABLE = [block for block in PYTHON if block.marker in {"runnable", "runnable: server"}]
YAML = all_blocks("yaml")
JSON = all_blocks("json")
ECHO = {"routes": [{"provider": "echo", "model": "echo"}]}
CONFIG = "models:\n  echo:\n    routes: [{provider: echo, model: echo}]\n"


def ids(blocks: list[Block]) -> list[str]:
    return [block.id for block in blocks]


def test_the_docs_have_examples_of_each_kind() -> None:
    assert len(PYTHON) > 10 and len(YAML) > 8 and JSON
    assert {block.marker for block in RUNNABLE} == {"runnable", "runnable: server"}
    markers = {block.marker for block in [*PYTHON, *YAML, *JSON]}
    assert markers <= {None, "runnable", "runnable: server", "fragment"}, f"unknown marker in {markers}"


@pytest.mark.parametrize("block", PYTHON, ids=ids(PYTHON))
def test_python_block_compiles(block: Block) -> None:
    compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


@pytest.mark.parametrize("block", RUNNABLE, ids=ids(RUNNABLE))
def test_runnable_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "routemw.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code = block.code
    with server_if(block.marker == "runnable: server") as url:
        if url is not None:
            assert "http://127.0.0.1:8000" in code, "a server block talks to the default address"
            code = code.replace("http://127.0.0.1:8000", url)
        exec(compile(code, block.id, "exec"), {"__name__": "docs_example"})


class _AnyEnvironment(Mapping[str, str]):
    """`${VAR}` set to a value that says where it came from; `${VAR:-default}` takes its default.

    The loader reads `${VAR:-default}` with `get` and `${VAR}` with `in` and `[]`, so an example
    shows its defaults working (a Redis URL) while every required variable has a value.
    """

    def __getitem__(self, name: str) -> str:
        return f"value-of-{name}"

    def get(self, name: str, default: Any = None) -> Any:
        return default

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@pytest.mark.parametrize("block", YAML, ids=ids(YAML))
def test_yaml_block_is_a_working_config(block: Block) -> None:
    document: Any = yaml.safe_load(block.code)
    if block.marker == "fragment":
        return
    assert isinstance(document, dict), "a config example is a mapping"
    document.setdefault("models", {"echo": ECHO})
    gateway = Gateway.from_config(document, environ=_AnyEnvironment())
    asyncio.run(gateway.aclose())


@pytest.mark.parametrize("block", JSON, ids=ids(JSON))
def test_json_block_parses(block: Block) -> None:
    json.loads(block.code)


@contextmanager
def server_if(wanted: bool) -> Iterator[str | None]:
    """The embedded default served on a free port when `wanted`; yields its base URL, else None."""
    if not wanted:
        yield None
        return
    with serve(Gateway.from_config(default_document({})), lifespan="on") as live:
        yield live.url
