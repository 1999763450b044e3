"""Provider adapters: one subpackage per upstream protocol, beside the helpers they share.

- `base`, `registry`: the adapter protocol and the registry every adapter (built-in or plugin)
  registers through.
- `http_provider`, `classify`, `chunks`, `normalize`, `sse_translator`: what more than one
  adapter needs (HTTP plumbing, error classification, chunk building, OpenAI-shape clean-up).
- `openai/` (OpenAI and compatible servers, Azure OpenAI, the per-family OpenAI profiles),
  `anthropic/`, `gemini/`: one package per wire format, each split into request building,
  response and stream translation, and error mapping.
- `echo`: the embedded model that needs no network.
"""
