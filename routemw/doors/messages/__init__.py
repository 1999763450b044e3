"""Anthropic's Messages API as a door: `/v1/messages` in, any provider out.

One concept per module: `check` (the request shape Anthropic accepts), `translate` (an
accepted request in OpenAI terms), `parse` (bytes to a `ChatRequest` through those two), `ids`
(tool-use ids across the protocol line), `render` (an OpenAI completion as a `message`),
`events` (a reply stream as Anthropic's event stream), `errors` (the error tree in Anthropic's
envelope), `estimate` (token counts without a tokenizer) and `door` (the `Door` itself, with
`count_tokens`). The passthrough half, for Anthropic routes, lives with the Anthropic adapter
(`routemw.providers.anthropic.passthrough`), since it is that adapter's wire format.
"""

from .door import COUNT_TOKENS_PATH, MESSAGES_PATH, MessagesDoor

__all__ = ["COUNT_TOKENS_PATH", "MESSAGES_PATH", "MessagesDoor"]
