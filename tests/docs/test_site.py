"""The docs site builds, and the README stays a front page that leads into it.

`mkdocs build --strict` fails on any warning: a broken link or anchor, a page missing from the
nav. It needs the `docs` extra (also in the `test` extra, so the README's test command installs
it); without mkdocs the test skips with that reason, which CI turns into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_source import README, ROOT, anchors

README_LIMIT = 12 * 1024  # bytes: a front page, not a manual


def test_mkdocs_builds_the_site_strictly(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs and mkdocs-material are not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


def test_the_readme_is_a_front_page() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_the_readme_quickstart_is_what_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e . && routemw serve" in readme
    assert "pip install -e '.[test]' && pytest" in readme
    assert "\npip install -e '.[test]'\n" in ci and "mkdocs build --strict" in ci


def test_every_link_in_the_readme_resolves() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local, "the README links into docs/"
    for link in local:
        target, _, anchor = link.partition("#")
        path = ROOT / target if target else README
        assert path.is_file(), f"README links to {link}, which does not exist"
        if anchor:
            assert anchor in anchors(path), f"README links to {link}: no such heading in {target}"
