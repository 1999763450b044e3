"""Request translation shared by OpenAI-shaped adapters (openai, echo, and Azure later).

`normalize_openai` returns the client's own body object when the target needs nothing changed,
so the caller can tell with `is` that the original bytes may be forwarded; otherwise a new dict
with: route defaults for absent keys, the fields the capability check decided to drop or clamp
for this target, the output limit under the spelling the target wants, `developer` turns as
`system` where the target has no developer role, and no `stream_options` where it rejects them.
"""

from __future__ import annotations

from typing import Any

from .base import Target

__all__ = ["normalize_openai"]

_OTHER_SPELLING = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}


def normalize_openai(body: dict[str, Any], target: Target) -> dict[str, Any]:
    profile = target.profile
    wanted = profile.output_tokens_field
    rename = wanted is not None and _OTHER_SPELLING[wanted] in body
    developer = not profile.developer_role and any(
        isinstance(m, dict) and m.get("role") == "developer" for m in body["messages"]
    )
    strip_stream_options = not profile.stream_options and "stream_options" in body
    defaults = [key for key in target.params if key not in body]
    if not (target.drop or target.clamp or rename or developer or strip_stream_options or defaults):
        return body
    out = {key: value for key, value in body.items() if key not in target.drop}
    out.update(target.clamp)
    for key in defaults:
        out[key] = target.params[key]
    if rename and wanted is not None:
        other = _OTHER_SPELLING[wanted]
        value = out.pop(other)
        out.setdefault(wanted, value)  # both sent: the target's own spelling wins
    if developer:
        out["messages"] = [
            {**m, "role": "system"} if isinstance(m, dict) and m.get("role") == "developer" else m
            for m in out["messages"]
        ]
    if strip_stream_options:
        out.pop("stream_options", None)
    return out
