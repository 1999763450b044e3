"""Auth through the whole gateway: 401s, per-account models and fallbacks, no leaked secrets."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson
import pytest
from fakes import drive

from routemw import (
    Account,
    AuthenticationError,
    Authenticator,
    AuthMiddleware,
    Call,
    ConfigKeyStore,
    Gateway,
    load_config,
)
from routemw.chat import parse_chat_request
from routemw.reply import Completion, Reply

SECRET_A = "sk-team-a-0123456789abcdefWXYZ"
SECRET_ALL = "sk-admin-00000000000000ADMN"
UPSTREAM_KEY = "sk-upstream-provider-key-77777"


def _config() -> dict[str, Any]:
    return {
        "providers": {"flaky": {"type": "echo", "script": [{"status": 503}] * 10}},
        "models": {
            "public": {"routes": [{"provider": "flaky", "model": "public"}], "fallbacks": ["private"]},
            "private": {"routes": [{"provider": "echo", "model": "private"}]},
            "open": {"routes": [{"provider": "echo", "model": "open"}], "fallbacks": ["public"]},
        },
        "keys": [
            {"name": "team-a", "key": SECRET_A, "models": ["public", "open"]},
            {"name": "admin", "key": SECRET_ALL, "models": ["*"]},
        ],
        "auth": {"mode": "keys"},
    }


def _client(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://gateway")


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


async def test_chat_without_key_is_401_envelope() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        response = await client.post("/v1/chat/completions", json=_chat("open"))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["x-request-id"]


async def test_model_not_on_account_looks_exactly_like_a_missing_model() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        headers = {"authorization": f"Bearer {SECRET_A}", "x-request-id": "fixed-id"}
        hidden = await client.post("/v1/chat/completions", json=_chat("private"), headers=headers)
        missing = await client.post("/v1/chat/completions", json=_chat("nonexistent"), headers=headers)
        hidden_card = await client.get("/v1/models/private", headers=headers)
        missing_card = await client.get("/v1/models/nonexistent", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == "model_not_found"
    assert hidden.json()["error"]["param"] == "model"
    # Byte for byte the same, once the model name each asked about is swapped out.
    assert hidden.content.replace(b"private", b"X") == missing.content.replace(b"nonexistent", b"X")
    assert hidden_card.status_code == missing_card.status_code == 404
    assert hidden_card.content.replace(b"private", b"X") == missing_card.content.replace(b"nonexistent", b"X")


async def test_fallback_model_is_tried_only_if_the_account_may_use_it() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        team = await client.post("/v1/chat/completions", json=_chat("public"), headers={"x-api-key": SECRET_A})
        admin = await client.post("/v1/chat/completions", json=_chat("public"), headers={"x-api-key": SECRET_ALL})
    # team-a may not use `private`, so after `public`'s only route fails there is nothing left.
    assert team.status_code == 502
    assert "private" not in team.text
    # admin may, so the fallback answers.
    assert admin.status_code == 200
    assert admin.headers["x-routemw-route-model"] == "private"
    assert admin.json()["choices"][0]["message"]["content"] == "hello"


async def test_models_list_is_per_account() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        team = await client.get("/v1/models", headers={"authorization": f"Bearer {SECRET_A}"})
        admin = await client.get("/v1/models", headers={"authorization": f"bearer {SECRET_ALL}"})
        anonymous = await client.get("/v1/models")
    assert sorted(m["id"] for m in team.json()["data"]) == ["open", "public"]
    assert sorted(m["id"] for m in admin.json()["data"]) == ["open", "private", "public"]
    assert anonymous.status_code == 401
    card = team.json()["data"][0]
    assert set(card) >= {"id", "object", "created", "owned_by", "capabilities"}
    assert card["object"] == "model" and isinstance(card["created"], int)


async def test_oversized_or_binary_authorization_is_401_not_500() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        big = await client.post(
            "/v1/chat/completions", json=_chat("open"), headers={"authorization": "Bearer " + "k" * 20000}
        )
        binary = await client.post(
            "/v1/chat/completions", json=_chat("open"), headers=[(b"authorization", b"Bearer \xff\xfe\x01\x02secret")]
        )
    assert big.status_code == 401
    assert binary.status_code == 401
    assert "k" * 100 not in big.text


async def test_host_authentication_hook_maps_scope_to_account() -> None:
    def account_from_scope(scope: Any) -> Account | None:
        user = scope.get("user")
        return Account(user, frozenset({"open"})) if user else None

    gateway = Gateway.from_config(_config(), account_from_scope=account_from_scope)

    async def host(scope: Any, receive: Any, send: Any) -> None:
        # Stand-in for Starlette's AuthenticationMiddleware: the host decides who the user is.
        if scope["type"] == "http":
            scope = {**scope, "user": "alice" if (b"cookie", b"session=alice") in scope["headers"] else None}
        await gateway(scope, receive, send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://host") as client:
        ok = await client.post("/v1/chat/completions", json=_chat("open"), headers={"cookie": "session=alice"})
        denied = await client.post("/v1/chat/completions", json=_chat("public"), headers={"cookie": "session=alice"})
        anonymous = await client.post("/v1/chat/completions", json=_chat("open"))
    assert ok.status_code == 200
    assert denied.status_code == 404
    assert anonymous.status_code == 401


async def test_no_secret_in_any_response_header_body_or_log(caplog: pytest.LogCaptureFixture) -> None:
    config = _config()
    config["providers"]["real"] = {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": UPSTREAM_KEY}
    config["models"]["real"] = {"routes": [{"provider": "real", "model": "gpt"}]}

    def upstream(request: httpx.Request) -> httpx.Response:
        # A careless upstream that echoes the key it was given in its error message.
        key = request.headers["authorization"].removeprefix("Bearer ")
        error = {"message": f"Key {key} is not allowed for this request", "type": "invalid_request_error"}
        return httpx.Response(400, json={"error": {**error, "param": None, "code": "bad"}})

    caplog.set_level(logging.DEBUG)
    gateway = Gateway.from_config(config, transport=httpx.MockTransport(upstream))
    secrets = [SECRET_A, SECRET_ALL, UPSTREAM_KEY]
    responses = []
    async with _client(gateway) as client:
        for headers in ({}, {"x-api-key": SECRET_A}, {"x-api-key": SECRET_A + "x"}, {"x-api-key": SECRET_ALL}):
            for model in ("open", "private", "public", "real"):
                responses.append(await client.post("/v1/chat/completions", json=_chat(model), headers=headers))
            responses.append(await client.get("/v1/models", headers=headers))
    assert any(r.status_code == 400 for r in responses)  # the leaky upstream error was reached
    for response in responses:
        text = response.text + orjson.dumps(dict(response.headers)).decode()
        for secret in secrets:
            assert secret not in text
    for record in caplog.records:
        for secret in secrets:
            assert secret not in record.getMessage()


# -- authentication comes before the body ------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", orjson.dumps(_chat("open")), b"x" * 100])
async def test_a_request_without_a_valid_key_is_401_before_its_body_is_read(body: bytes) -> None:
    gateway = Gateway.from_config(_config())
    for headers in ([], [("authorization", "Bearer sk-wrong-key-000000000000")]):
        driver = await drive(gateway, body=body, headers=headers)
        assert driver.status == 401
        assert driver.json()["error"]["code"] == "invalid_api_key"
        assert driver.receives == 0  # not one byte of the body was taken, let alone parsed


async def test_with_a_valid_key_a_bad_body_is_still_a_400_and_the_key_is_looked_up_once() -> None:
    lookups: list[str] = []

    class CountingStore:
        async def lookup(self, secret: str) -> Account | None:
            lookups.append(secret)
            return Account("alice") if secret == SECRET_A else None

    gateway = Gateway.from_config(_config(), key_store=CountingStore())
    bad = await drive(gateway, body=b"{not json", headers=[("x-api-key", SECRET_A)])
    good = await drive(gateway, json=_chat("open"), headers=[("x-api-key", SECRET_A)])
    assert (bad.status, good.status) == (400, 200)
    assert lookups == [SECRET_A, SECRET_A]  # once per request: the pipeline's AuthMiddleware trusts the gateway


async def test_auth_middleware_still_authenticates_a_call_nobody_authenticated() -> None:
    """A pipeline driven without the gateway (a user's own door) is not left open."""
    middleware = AuthMiddleware(Authenticator(ConfigKeyStore(load_config(_config()).keys)))

    async def endpoint(call: Call) -> Reply:
        return Completion({"account": call.account.name})

    def call(headers: dict[str, str]) -> Call:
        return Call(request=parse_chat_request(orjson.dumps(_chat("open"))), request_id="r", headers=headers, scope={})

    reply = await middleware(call({"x-api-key": SECRET_A}), endpoint)
    assert isinstance(reply, Completion) and reply.data == {"account": "team-a"}
    with pytest.raises(AuthenticationError):
        await middleware(call({}), endpoint)
    ready = call({})
    ready.account = Account("decided-upstream")
    reply = await middleware(ready, endpoint)  # an account already on the call is kept
    assert isinstance(reply, Completion) and reply.data == {"account": "decided-upstream"}


async def test_authorization_basic_does_not_hide_a_valid_x_api_key() -> None:
    async with _client(Gateway.from_config(_config())) as client:
        headers = {"authorization": "Basic dXNlcjpwYXNz", "x-api-key": SECRET_A}
        chat = await client.post("/v1/chat/completions", json=_chat("open"), headers=headers)
        models = await client.get("/v1/models", headers=headers)
        alone = await client.post("/v1/chat/completions", json=_chat("open"), headers={"authorization": "Basic eDp5"})
    assert chat.status_code == 200
    assert models.status_code == 200 and sorted(m["id"] for m in models.json()["data"]) == ["open", "public"]
    assert alone.status_code == 401
    assert "'Basic' authorization scheme is not supported" in alone.json()["error"]["message"]


# -- errors that quote the client are short, and never an oracle -------------------------------


async def test_a_quoted_model_name_is_cut_short_and_never_redacted() -> None:
    gateway = Gateway.from_config({**_config(), "providers": {**_config()["providers"], "real": _real_provider()}})
    guesses = " ".join(f"sk-guess-{n:05d}" for n in range(5000))
    async with _client(gateway) as client:
        admin = {"x-api-key": SECRET_ALL}
        packed_model = f"{guesses} {SECRET_A} {UPSTREAM_KEY}"
        packed = await client.post("/v1/chat/completions", json=_chat(packed_model), headers=admin)
        exact = [
            await client.post("/v1/chat/completions", json=_chat(secret), headers=admin)
            for secret in (SECRET_A, UPSTREAM_KEY)
        ]
        card = await client.get(f"/v1/models/{'m' * 500}", headers=admin)
    message = packed.json()["error"]["message"]
    assert packed.status_code == 404
    assert "[redacted]" not in message
    assert f"`{guesses[:64]}…`" in message and len(message) < 200
    # The client's own input comes back as it was sent: blanking a secret in it would confirm
    # the guess. Only text from an upstream is scrubbed.
    for response, sent in zip(exact, (SECRET_A, UPSTREAM_KEY), strict=True):
        assert response.status_code == 404
        assert f"`{sent}`" in response.json()["error"]["message"]
    assert card.status_code == 404 and f"`{'m' * 64}…`" in card.json()["error"]["message"]


def _real_provider() -> dict[str, Any]:
    return {"type": "openai", "base_url": "https://upstream.test/v1", "api_key": UPSTREAM_KEY}
