"""The embedded default, end to end in-process: what `routemw serve` answers out of the box."""

from __future__ import annotations

import httpx

from routemw import Gateway


async def test_the_embedded_default_serves_echo_without_any_setup() -> None:
    gateway = Gateway.from_config(None, environ={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gw") as client:
        models = await client.get("/v1/models")
        answer = await client.post(
            "/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": "hello there"}]}
        )
        missing = await client.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert [m["id"] for m in models.json()["data"]] == ["echo"]
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "hello there"
    assert answer.headers["x-request-id"]
    assert missing.status_code == 400  # an empty `messages` is the client's mistake, named as such
    assert missing.json()["error"]["param"] == "messages"
