"""Accounts, key lookup and the Authenticator (issue: accounts and auth)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pytest

from routemw import ANONYMOUS, Account, Authenticator, ConfigKeyStore, load_config
from routemw.accounts import presented_key
from routemw.errors import AuthenticationError, ConfigError

SECRET_A = "sk-team-a-0123456789abcdefWXYZ"
SECRET_B = "sk-team-b-9876543210fedcbaQRST"


def _keys_config(extra_keys: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "models": {
            "echo": {"routes": [{"provider": "echo", "model": "echo"}]},
            "other": {"routes": [{"provider": "echo", "model": "other"}]},
        },
        "keys": [
            {"name": "team-a", "key": SECRET_A, "models": ["echo"], "metadata": {"tier": "gold"}},
            {"name": "team-b", "sha256": hashlib.sha256(SECRET_B.encode()).hexdigest(), "models": ["*"]},
            *(extra_keys or []),
        ],
        "auth": {"mode": "keys"},
    }


def _authenticator() -> Authenticator:
    return Authenticator(ConfigKeyStore(load_config(_keys_config()).keys))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": f"Bearer {SECRET_A}"}, SECRET_A),
        ({"authorization": f"bearer {SECRET_A}"}, SECRET_A),
        ({"authorization": f"BEARER {SECRET_A}"}, SECRET_A),
        ({"authorization": f"  Bearer   {SECRET_A}  "}, SECRET_A),
        ({"x-api-key": SECRET_A}, SECRET_A),
        ({"x-api-key": f" {SECRET_A} "}, SECRET_A),
        ({"authorization": f"Basic {SECRET_A}"}, None),
        ({"authorization": "Bearer"}, None),
        ({"authorization": "Bearer    "}, None),
        ({}, None),
        # Another scheme, or an empty Bearer, does not hide an x-api-key beside it.
        ({"authorization": "Basic dXNlcjpwYXNz", "x-api-key": SECRET_A}, SECRET_A),
        ({"authorization": "Bearer ", "x-api-key": SECRET_A}, SECRET_A),
        ({"authorization": f"Bearer {SECRET_A}", "x-api-key": SECRET_B}, SECRET_A),
    ],
)
def test_presented_key_header_variants(headers: Mapping[str, str], expected: str | None) -> None:
    assert presented_key(headers) == expected


async def test_plain_and_sha256_keys_map_to_their_accounts() -> None:
    auth = _authenticator()
    a = await auth.authenticate({"authorization": f"Bearer {SECRET_A}"}, {})
    b = await auth.authenticate({"x-api-key": SECRET_B}, {})
    assert (a.name, a.models, dict(a.metadata)) == ("team-a", frozenset({"echo"}), {"tier": "gold"})
    assert (b.name, b.models) == ("team-b", frozenset({"*"}))
    assert a.may_use("echo") and not a.may_use("other")
    assert b.may_use("other")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer "},
        {"authorization": f"Token {SECRET_A}"},
        {"authorization": "Bearer sk-unknown-key-0000000000LAST"},
        {"authorization": "Bearer " + "x" * 5000},
        {"authorization": "Bearer sk-\x00\x01binary\xff\xfe"},
    ],
)
async def test_missing_malformed_or_unknown_key_is_401(headers: Mapping[str, str]) -> None:
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate(headers, {})
    envelope = info.value.envelope()["error"]
    assert info.value.status_code == 401
    assert envelope["type"] == "invalid_request_error"
    assert envelope["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("authorization", "named"),
    [("Basic dXNlcjpwYXNzd29yZA==", "'Basic' "), ("Digest username=x", "'Digest' "), (SECRET_A, "")],
)
async def test_an_unsupported_scheme_alone_is_named_and_the_ways_to_send_a_key_given(
    authorization: str, named: str
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate({"authorization": authorization}, {})
    message = info.value.message
    assert message.startswith(f"The {named}authorization scheme is not supported.")
    assert "Authorization: Bearer YOUR_KEY" in message and "x-api-key: YOUR_KEY" in message
    assert "didn't provide" not in message
    assert SECRET_A not in message  # a bare value may be the key itself: never echoed


async def test_unknown_key_message_shows_at_most_the_last_four_characters() -> None:
    secret = "sk-unknown-key-0000000000LAST"
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate({"authorization": f"Bearer {secret}"}, {})
    message = info.value.message
    assert "LAST" in message
    for start in range(len(secret) - 4):
        assert secret[start : start + 5] not in message


async def test_short_unknown_key_is_not_echoed_at_all() -> None:
    with pytest.raises(AuthenticationError) as info:
        await _authenticator().authenticate({"authorization": "Bearer abcdefgh"}, {})
    assert "efgh" not in info.value.message


async def test_auth_off_gives_the_anonymous_account_with_every_model() -> None:
    account = await Authenticator().authenticate({}, {})
    assert account is ANONYMOUS
    assert account.may_use("anything")


async def test_scope_resolver_sync_and_async() -> None:
    def from_user(scope: Mapping[str, Any]) -> Account | None:
        user = scope.get("user")
        return Account(user, frozenset({"echo"})) if user else None

    async def from_user_async(scope: Mapping[str, Any]) -> Account | None:
        return from_user(scope)

    for resolver in (from_user, from_user_async):
        auth = Authenticator(scope_resolver=resolver)
        assert (await auth.authenticate({}, {"user": "alice"})).name == "alice"
        with pytest.raises(AuthenticationError):
            await auth.authenticate({"authorization": f"Bearer {SECRET_A}"}, {})


class _DatabaseStore:
    def __init__(self) -> None:
        self.seen: list[str] = []

    async def lookup(self, secret: str) -> Account | None:
        self.seen.append(secret)
        return Account("db-user") if secret == "db-secret-key" else None


async def test_custom_key_store_is_consulted() -> None:
    store = _DatabaseStore()
    auth = Authenticator(store)
    assert (await auth.authenticate({"x-api-key": "db-secret-key"}, {})).name == "db-user"
    with pytest.raises(AuthenticationError):
        await auth.authenticate({"x-api-key": "nope-nope-nope"}, {})
    assert store.seen == ["db-secret-key", "nope-nope-nope"]


def test_duplicate_names_and_secrets_are_startup_errors_without_the_secret() -> None:
    duplicate_name = {"name": "team-a", "key": "sk-some-other-secret-000", "models": ["*"]}
    duplicate_secret = {"name": "team-c", "key": SECRET_B, "models": ["*"]}
    with pytest.raises(ConfigError) as info:
        load_config(_keys_config([duplicate_name, duplicate_secret]))
    problems = info.value.problems
    assert any(p.startswith("keys[2].name:") and "team-a" in p for p in problems)
    assert any(p.startswith("keys[3]:") and "keys[1]" in p for p in problems)
    assert all(SECRET_B not in p and "sk-some-other" not in p for p in problems)


def test_keys_mode_without_keys_is_a_startup_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"auth": {"mode": "keys"}, "keys": []})
    assert any(p.startswith("auth.mode:") for p in info.value.problems)


def test_store_keeps_no_plain_secret_in_memory() -> None:
    store = ConfigKeyStore(load_config(_keys_config()).keys)
    state = repr(vars(store)) if hasattr(store, "__dict__") else repr(store)
    assert SECRET_A not in state
    assert SECRET_A.encode() not in b"".join(store._accounts)
