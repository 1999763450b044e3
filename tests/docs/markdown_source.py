"""Reading the documentation as data: its pages, fenced blocks with their markers, and tables.

A marker is an HTML comment alone on the line before a fence (`<!-- runnable -->`), invisible in
the rendered page. The docs tests read them; `docs/development.md` says what each one means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = next(d for d in Path(__file__).resolve().parents if (d / "pyproject.toml").is_file())
DOCS = ROOT / "docs"
README = ROOT / "README.md"

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
_MARKER = re.compile(r"<!--\s*([a-z-]+(?::\s*[a-z-]+)?)\s*-->\s*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def pages() -> list[Path]:
    """Every page of the docs, and the README."""
    return [*sorted(DOCS.glob("*.md")), README]


@dataclass(frozen=True, slots=True)
class Block:
    path: Path
    line: int  # where the code starts (the line after the fence)
    lang: str
    code: str
    marker: str | None  # "runnable", "runnable: server", "fragment", ...

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    out: list[Block] = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text[: match.start()].count("\n") + 2
        name = re.sub(r"\s+", " ", marker.group(1)) if marker else None
        out.append(Block(path, line, match.group(1), match.group(2), name))
    return out


def all_blocks(lang: str) -> list[Block]:
    return [block for path in pages() for block in blocks(path) if block.lang == lang]


def cells(row: str) -> list[str]:
    """A Markdown table row's cells, with `\\|` kept as a literal bar."""
    parts = _CELL_SPLIT.split(row.strip().strip("|"))
    return [part.strip().replace("\\|", "|") for part in parts]


def tables(path: Path) -> list[tuple[list[str], list[list[str]]]]:
    """Every table on a page outside code fences: (header cells, rows of cells)."""
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    out: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|[\s|:-]+\|", lines[i + 1].strip()):
            header = cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            out.append((header, rows))
        else:
            i += 1
    return out


def slug(heading: str) -> str:
    """The anchor Python-Markdown's `toc` gives a heading (its default slugify)."""
    import unicodedata

    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text(encoding="utf-8"))
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}
