"""The built-in `echo` provider: an honest, deterministic model of the OpenAI API, no network.

It answers with the last user message, streams it token by token, gives `n` choices, stops at
`max_tokens` with `finish_reason: length`, calls tools when `tool_choice` forces it (arguments
valid against the tool's schema), and answers JSON modes with a JSON object that fits. What it
cannot do (log probabilities, images, audio, reasoning) its profile declares unsupported, so
the capability check and parameter policy handle it like any other target. It can be scripted
with faults (error statuses, delays, stalls, streams cut short), scripted text and tool calls,
so that routing, retries, streaming and agent loops can be exercised end to end, by our tests
and by users' own.

It is deliberately a *transport* behind the ordinary OpenAI adapter rather than a special code
path: everything a real upstream goes through (request building, SSE decoding, error
classification) runs for it too.

- `answer`: what to say for a request (tokens, limits, tool calls, JSON modes, usage); pure.
- `schema`: the smallest valid instance of a JSON schema, and a check against one.
- `script`: `EchoStep`, one scripted behaviour, read from config.
- `upstream`: `EchoUpstream`, the transport that renders answers in OpenAI's wire shapes.
- `provider`: `EchoProvider`, its profile, and `register`.

Config (all optional): `chunk_delay` (seconds between stream chunks) and `script`, a list of
steps consumed one per request, after which it answers normally. A step may hold: `status`
with `message`, `code`, `type` and `headers` (an error answer), `delay` (seconds before
answering), `stall: true` (never answer), `text` (answer this instead), `cut_after` (stream that
many tokens, then end without finishing), `tool_call` (a tool name, or `true` for the first
tool: answer with that call) with optional `arguments`.
"""

from __future__ import annotations

from .provider import ECHO_PROFILE, EchoProvider, register
from .script import EchoStep
from .upstream import EchoUpstream

__all__ = ["ECHO_PROFILE", "EchoProvider", "EchoStep", "EchoUpstream", "register"]
