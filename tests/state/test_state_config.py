"""`state:` in the config, and what the core install does without the redis package."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from routemw import Gateway
from routemw.config import load_config
from routemw.errors import ConfigError
from routemw.state import redis_client

MODELS: dict[str, Any] = {"echo": {"routes": [{"provider": "echo", "model": "echo"}]}}
PASSWORD = "s3cret-redis-password"


def config(state: Any) -> dict[str, Any]:
    return {"models": MODELS, "state": state}


def problems(state: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(config(state), environ={})
    return list(caught.value.problems)


def test_without_state_everything_stays_in_this_process() -> None:
    loaded = load_config({"models": MODELS}, environ={})
    assert loaded.state.redis is None
    assert loaded.state.on_error == "open"


def test_a_full_state_section_is_read() -> None:
    state = {"redis": {"url": "redis://127.0.0.1:6379/2", "prefix": "gw1:"}, "on_error": "closed", "timeout": 0.5}
    loaded = load_config(config(state), environ={}).state
    assert loaded.redis is not None
    assert (loaded.redis.url, loaded.redis.prefix) == ("redis://127.0.0.1:6379/2", "gw1:")
    assert (loaded.on_error, loaded.timeout) == ("closed", 0.5)


def test_the_url_comes_from_the_environment_with_a_default() -> None:
    state = {"redis": {"url": "${REDIS_URL:-redis://127.0.0.1:6379/0}"}}
    assert load_config(config(state), environ={}).state.redis.url == "redis://127.0.0.1:6379/0"  # type: ignore[union-attr]
    loaded = load_config(config(state), environ={"REDIS_URL": "rediss://cache:6380/1"}).state.redis
    assert loaded is not None and loaded.url == "rediss://cache:6380/1"
    assert loaded.prefix == "routemw:"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"redis": {"prefix": "x:"}}, "state.redis.url: required, for example redis://127.0.0.1:6379/0"),
        ({"redis": {"url": "http://cache:6379"}}, "state.redis.url: expected a redis://, rediss:// or unix:// URL"),
        ({"redis": {"url": "redis://h", "prefix": "{team}:"}}, "state.redis.prefix: must not contain { or }"),
        ({"on_error": "maybe"}, "state.on_error: expected one of open, closed, got 'maybe'"),
        ({"timeout": 0}, "state.timeout: must be greater than 0"),
        ({"redis": {"url": "redis://h", "db": 2}}, "state.redis.db: unknown key"),
        ({"shared": True}, "state.shared: unknown key"),
    ],
)
def test_bad_state_settings_are_named(state: Any, expected: str) -> None:
    assert expected in problems(state)


def test_a_bad_url_is_refused_without_being_echoed() -> None:
    found = problems({"redis": {"url": f"http://user:{PASSWORD}@cache:6379"}})
    assert found and PASSWORD not in " ".join(found)


def test_the_password_in_the_url_is_a_secret_to_scrub() -> None:
    loaded = load_config(config({"redis": {"url": f"redis://:{PASSWORD}@127.0.0.1:6379/0"}}), environ={})
    assert PASSWORD in loaded.secrets()
    assert PASSWORD not in repr(loaded)


def test_the_core_install_never_imports_redis() -> None:
    # A fresh interpreter: building and serving a gateway without `state.redis` loads no redis module.
    code = (
        "import sys, anyio\n"
        "from routemw import Gateway\n"
        "gw = Gateway.from_config(None, environ={})\n"
        "assert gw.redis is None\n"
        "print(sorted(m for m in sys.modules if m == 'redis' or m.startswith('redis.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_state_redis_without_the_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # `None` in sys.modules makes the import fail as it does where the package is not installed.
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ConfigError) as caught:
        redis_client("redis://127.0.0.1:6379/0", timeout=0.25)
    assert caught.value.problems == ("state.redis: the Redis client is not installed; pip install 'routemw[redis]'",)
    with pytest.raises(ConfigError, match=r"routemw\[redis\]"):
        Gateway.from_config(config({"redis": {"url": "redis://127.0.0.1:6379/0"}}), environ={})


def test_the_gateways_client_speaks_resp2_whatever_the_library_defaults_to() -> None:
    pytest.importorskip("redis", reason="the redis package is not installed (pip install -e '.[test]')")
    gateway = Gateway.from_config(config({"redis": {"url": "redis://127.0.0.1:1/0"}, "timeout": 0.3}), environ={})
    kwargs = gateway.redis.connection_pool.connection_kwargs
    assert kwargs["protocol"] == 2
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.3, 0.3)
