"""Doors: inbound protocols other than OpenAI chat completions, each in its own module or package.

A door owns its protocol at the edge and nowhere else. It parses a request into the canonical
`ChatRequest` the pipeline carries (keeping the client's own request on `ChatRequest.native`),
runs the gateway's one pipeline, and renders the reply and every error in its own envelope.
Middleware stays protocol-neutral: accounts, capabilities, limits and fallback see what a
request needs and costs, not how it was spelled. An adapter whose wire format is the door's
protocol gets the client's request untouched (`routemw.native.passes_through`).

- `messages`: Anthropic's Messages API, `POST /v1/messages` and `/v1/messages/count_tokens`.
- `embeddings`: `POST /v1/embeddings`, requests of kind `embeddings` (`ChatRequest.kind`) in
  OpenAI's own shape; OpenAI-type routes pass them through, Gemini routes translate them.
- `responses`: OpenAI's Responses API, `POST /v1/responses`, passed through to routes that
  speak OpenAI's protocol; continuations pinned to their provider (`routemw.affinity`).
"""
