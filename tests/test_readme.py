"""The README's "Mounting in your app" snippets run exactly as printed.

Each Python block of that section is executed on its own (a reader copies one block, not the
section), in a directory holding the `routemw.yaml` the snippets name, and the `app` it builds is
served by uvicorn and called with the `openai` SDK. `examples/mount_*.py` are the same apps as
runnable files; `test_examples.py` runs those.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from servers import serve
from test_examples import echo_round_trip

ROOT = next(d for d in Path(__file__).resolve().parents if (d / "pyproject.toml").is_file())
CONFIG = "models:\n  echo:\n    routes: [{provider: echo, model: echo}]\n"


def section_blocks(title: str) -> list[tuple[int, str]]:
    """The ```python blocks of a README section, with the line each starts on."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n##", start + 1)  # the next heading, subsections included
    section = text[start:end]
    offset = text[:start].count("\n") + 1
    return [
        (offset + section[: match.start()].count("\n") + 1, match.group(1))
        for match in re.finditer(r"```python\n(.*?)```", section, flags=re.DOTALL)
    ]


MOUNT_BLOCKS = section_blocks("Mounting in your app")


def test_the_section_has_the_starlette_and_the_fastapi_snippets() -> None:
    assert ["starlette" in code for _, code in MOUNT_BLOCKS] == [True, False]
    assert ["fastapi" in code for _, code in MOUNT_BLOCKS] == [False, True]


@pytest.mark.parametrize(("line", "code"), MOUNT_BLOCKS, ids=["starlette", "fastapi"])
def test_a_mounting_snippet_runs_as_printed(
    line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "routemw.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(code, f"README.md, block at line {line}", "exec"), namespace)

    with serve(namespace["app"], lifespan="on") as live:
        answer, streamed = echo_round_trip(live.url + "/llm/v1")

    assert answer == streamed == "hello from the examples"
