"""Load a configuration from YAML, JSON or a mapping, and validate all of it at once.

This module turns the source into a plain document: it reads the file (its parsers' errors
reported without the document's text, which may hold a secret) and replaces `${VAR}` and
`${VAR:-default}` in string values from the environment before anything else; `$$` is a literal
`$`, and any other `$` is an error (see `interpolation`). Reading the document's sections into a
`GatewayConfig`, with every problem listed by its dotted path, is `sections`' job: it is the
larger half, and it does not care where the document came from.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from ..errors import ConfigError
from .interpolation import interpolate
from .schema import GatewayConfig
from .sections import ProviderTypes, Validator

__all__ = ["load_config"]

_QUOTED: Final = re.compile(r"'((?:[^'\\]|\\.)*)'")
_HARMLESS_QUOTE: Final = re.compile(r"<[a-z ]+>|.|\\(?:[a-z0-9]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    provider_types: ProviderTypes | None = None,
) -> GatewayConfig:
    """Read, interpolate and validate; raise `ConfigError` listing every problem."""
    env = os.environ if environ is None else environ
    if isinstance(source, Mapping):
        document: Any = source
        origin = "<mapping>"
    else:
        origin = os.fspath(source)
        document = _read(Path(origin))
    problems: list[str] = []
    document = interpolate(document, "", env, problems)
    if problems:
        raise ConfigError(problems)
    config = Validator(problems, provider_types).gateway(document, origin)
    if problems or config is None:
        raise ConfigError(problems)
    return config


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    # The parsers' own messages quote the offending line, and that line may hold a literal
    # `api_key`: only the position and the parser's complaint are reported, never the text. The
    # parser's exception is not chained (`from None`) so that a traceback cannot show it either.
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise ConfigError([f"{path}: not valid JSON at {where}: {exc.msg}"]) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML{_yaml_problem(exc, text)}"]) from None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what, from a PyYAML error, without any of the document's text."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = _QUOTED.sub(_redact_quoted, exc.problem or "syntax error")
        context = f" ({_QUOTED.sub(_redact_quoted, exc.context)})" if exc.context else ""
        return f" at line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return f" at line {line}, column {column}: {exc.reason}"
    return f": {type(exc).__name__}"


def _redact_quoted(match: re.Match[str]) -> str:
    # PyYAML quotes token kinds ('<stream end>') and single characters ('\t'), which say what is
    # wrong without revealing anything; longer quotes are names from the document (an alias, a
    # tag), which may be part of a secret.
    return match.group(0) if _HARMLESS_QUOTE.fullmatch(match.group(1)) else "'...'"
