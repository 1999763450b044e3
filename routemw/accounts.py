"""Accounts and how a request proves which one it is.

An `Account` is who is calling and which public models it may use. An `Authenticator` turns a
request into an account or a 401: by default from an API key (`Authorization: Bearer`, or the
`x-api-key` header Anthropic-style clients send) looked up in a `KeyStore`, or, for a host app
that already knows its user, from a function of the ASGI scope. It needs only the headers and
the scope, so the gateway runs it before reading the body.

The key is whichever credential is there: a Bearer token, else `x-api-key`. An `Authorization`
header of another scheme (`Basic`, say, which some HTTP tools add from a URL's user info) does
not hide an `x-api-key` beside it; alone, it gets a 401 that says the scheme is not supported.

Secrets never stay in memory in the clear: the config store keeps SHA-256 digests only, and
compares the presented key's digest with every stored one in constant time, without stopping
at a match, so the time taken says nothing about which key (or how much of one) matched. That
is linear in the number of keys, which is right for a config file's worth of them; a host with
millions backs `KeyStore` with its own indexed database.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Protocol

from .config import KeyConfig
from .config.schema import LimitsConfig, UnsupportedPolicy
from .errors import AuthenticationError

__all__ = ["ANONYMOUS", "Account", "Authenticator", "ConfigKeyStore", "KeyStore", "ScopeResolver", "key_digest"]

# Longer than any real API key; a larger header is refused before it is hashed.
_MAX_KEY_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class Account:
    """A caller: its name, the public models it may use (`"*"`: all), and free metadata."""

    name: str
    models: frozenset[str] = frozenset({"*"})
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    unsupported_params: UnsupportedPolicy | None = None  # this caller's parameter policy, if its own
    limits: LimitsConfig | None = None  # its own limits; None: the config's default `limits`
    expires: datetime | None = None  # timezone-aware; the key is refused from then on

    def may_use(self, model: str) -> bool:
        return "*" in self.models or model in self.models


ANONYMOUS: Final = Account("anonymous")  # every caller when auth is off


class KeyStore(Protocol):
    """Where API keys are looked up; back it with your own database if you like."""

    async def lookup(self, secret: str) -> Account | None: ...


ScopeResolver = Callable[[Mapping[str, Any]], "Account | Awaitable[Account | None] | None"]


def key_digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def key_digest_of(key: KeyConfig) -> bytes:
    return bytes.fromhex(key.sha256) if key.sha256 else key_digest(key.key or "")


class ConfigKeyStore:
    """The `keys` section of the config (validated: no duplicate names or secrets), as digests."""

    def __init__(self, keys: Iterable[KeyConfig]) -> None:
        self._accounts: dict[bytes, Account] = {
            key_digest_of(key): Account(
                key.name, frozenset(key.models), key.metadata, key.unsupported_params, key.limits, key.expires
            )
            for key in keys
        }

    def __len__(self) -> int:
        return len(self._accounts)

    async def lookup(self, secret: str) -> Account | None:
        digest = key_digest(secret)
        found: Account | None = None
        for candidate, account in self._accounts.items():
            if hmac.compare_digest(candidate, digest):
                found = account
        return found


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key in `Authorization: Bearer ...`, else in `x-api-key`; None when neither has one."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    key = headers.get("x-api-key")
    if key is not None and key.strip():
        return key.strip()
    return None


def _no_key(headers: Mapping[str, str]) -> AuthenticationError:
    how = "as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'."
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme and scheme.lower() != "bearer":
        # Name the scheme only when it looks like one ("Basic xyz"): a bare value may well be
        # the key itself, sent without a scheme, and a key is never written into an error.
        named = f"'{scheme}' " if credentials and scheme.isascii() and scheme.isalpha() and len(scheme) <= 16 else ""
        return AuthenticationError(f"The {named}authorization scheme is not supported. Send your API key {how}")
    return AuthenticationError(f"You didn't provide an API key. Send it {how}")


def _invalid_key(secret: str) -> AuthenticationError:
    # Like OpenAI, show the tail so a user can tell which key they sent; never more than four
    # characters, and nothing of a key too short for its tail to be safe to show.
    hint = f" ending in '{secret[-4:]}'" if len(secret) >= 12 and secret[-4:].isalnum() else ""
    return AuthenticationError(f"Incorrect API key provided{hint}.")


class Authenticator:
    """Decides the account of a request, or raises `AuthenticationError` (401)."""

    def __init__(self, store: KeyStore | None = None, *, scope_resolver: ScopeResolver | None = None) -> None:
        """No store and no resolver means auth is off: every request is `ANONYMOUS`."""
        self.store = store
        self.scope_resolver = scope_resolver

    async def authenticate(self, headers: Mapping[str, str], scope: Mapping[str, Any]) -> Account:
        if self.scope_resolver is not None:
            result = self.scope_resolver(scope)
            account = await result if inspect.isawaitable(result) else result
            if account is None:
                raise AuthenticationError("This request is not authenticated.")
            return _unexpired(account)
        if self.store is None:
            return ANONYMOUS
        secret = presented_key(headers)
        if secret is None:
            raise _no_key(headers)
        if len(secret) > _MAX_KEY_LENGTH or not secret.isascii() or not secret.isprintable():
            raise AuthenticationError("The API key provided is malformed.")
        account = await self.store.lookup(secret)
        if account is None:
            raise _invalid_key(secret)
        return _unexpired(account)


def _unexpired(account: Account) -> Account:
    expires = account.expires
    if expires is not None and time.time() >= expires.timestamp():
        when = expires.isoformat().replace("+00:00", "Z")
        raise AuthenticationError(f"The API key provided has expired (at {when}); ask for a new one.")
    return account
